"""put refuses what JSON cannot carry, naming the value and where it is; nothing reaches the broker.

msgspec would otherwise send ``b"raw"`` as the base64 string ``"cmF3"`` and
``float("nan")`` as ``null``, and the consumer would get something else than
what was put.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import enum
import inspect
import uuid
from typing import Any

import pytest

import wonderq
from wonderq import Envelope


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 1


# (body, exception class, the start of its message)
REFUSED: list[tuple[Any, type[Exception], str]] = [
    (b"raw bytes", TypeError, "body is bytes (b'raw bytes'), which JSON cannot carry"),
    (bytearray(b"x"), TypeError, "body is bytearray"),
    (memoryview(b"x"), TypeError, "body is memoryview"),
    (float("nan"), ValueError, "body is nan, which JSON cannot carry"),
    (float("inf"), ValueError, "body is inf"),
    ({"a": [1, 2, b"raw"]}, TypeError, 'body["a"][2] is bytes'),
    ({"a": {"b": float("-inf")}}, ValueError, 'body["a"]["b"] is -inf'),
    ([{"x": {1, 2}}], TypeError, 'body[0]["x"] is set'),
    ({"when": datetime.date(2024, 1, 2)}, TypeError, 'body["when"] is date'),
    (decimal.Decimal("1.5"), TypeError, "body is Decimal"),
    (uuid.UUID(int=1), TypeError, "body is UUID"),
    (Colour.RED, TypeError, "body is Colour"),
    ({"a": {1: "one"}}, TypeError, 'body["a"] has the key 1 (int)'),
    ({'say "hi"': [b"x"]}, TypeError, 'body["say \\"hi\\""][0] is bytes'),
]


@pytest.mark.parametrize(
    ("body", "error", "text"), REFUSED, ids=[text[:30] for _, _, text in REFUSED]
)
async def test_put_refuses_what_json_cannot_carry_and_stores_nothing(
    client: wonderq.AsyncClient, body: Any, error: type[Exception], text: str
) -> None:
    with pytest.raises(error) as caught:
        await client.put("jobs", body)
    assert str(caught.value).startswith(text), str(caught.value)
    assert await client.queues() == []  # nothing was sent: the queue was never created


async def test_put_refuses_options_json_cannot_carry(client: wonderq.AsyncClient) -> None:
    with pytest.raises(ValueError, match=r"^delay is nan"):
        await client.put("jobs", 1, delay=float("nan"))
    with pytest.raises(TypeError, match=r"^key is bytes"):
        await client.put("jobs", 1, key=b"k")  # type: ignore[arg-type]
    assert await client.queues() == []


async def test_put_many_refuses_the_whole_batch_naming_the_item(
    client: wonderq.AsyncClient,
) -> None:
    with pytest.raises(TypeError, match=r'^bodies\[1\]\["a"\] is bytes'):
        await client.put_many("jobs", [{"a": 1}, {"a": b"raw"}])
    with pytest.raises(ValueError, match=r"^bodies\[2\]\.body is nan"):
        await client.put_many("jobs", [1, 2, Envelope(float("nan"), key="k")])
    with pytest.raises(ValueError, match=r"^bodies\[0\]\.delay is inf"):
        await client.put_many("jobs", [Envelope(1, delay=float("inf"))])
    assert await client.queues() == []


async def test_what_json_carries_arrives_as_it_was_put(client: wonderq.AsyncClient) -> None:
    body = {
        "text": "héllo",
        "n": -(2**63),
        "big": 2**64 - 1,
        "x": 1.5,
        "flags": [True, False, None],
        "nested": {"a": [[], {}, [{"b": 0.0}]]},
    }
    await client.put("jobs", body)
    await client.put("jobs", (1, "two"))  # a tuple is an array, as for json.dumps
    await client.put("jobs", {"level": Level.HIGH})  # an int subclass is its int
    got = await client.get("jobs", max=3)
    assert [m.body for m in got] == [body, [1, "two"], {"level": 1}]


async def test_the_blocking_client_refuses_them_too(broker: Any) -> None:
    def script() -> list[str]:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            for bad in (b"raw", {"x": float("nan")}):
                with pytest.raises((TypeError, ValueError), match="JSON cannot carry"):
                    c.put("jobs", bad)
            with pytest.raises(TypeError, match=r"^bodies\[0\] is bytes"):
                c.put_many("jobs", [b"raw"])
            return c.queues()

    async with asyncio.timeout(10):
        assert await asyncio.to_thread(script) == []


def test_put_options_are_envelope_fields() -> None:
    # One table of PUT options: put()'s keyword arguments are Envelope's fields, so an
    # option added to one (dedup=, headers=) cannot be forgotten in the other.
    put_options = [
        name
        for name, p in inspect.signature(wonderq.AsyncClient.put).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert put_options == list(wonderq.commands.ENVELOPE_OPTIONS)
    assert ["body", *put_options] == list(Envelope.__struct_fields__)
