"""Error mapping: one class per wire code, named as the broker names it, raised with the server's message."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest

import broker.errors
import wonderq
from wonderq import errors


def test_client_codes_equal_the_brokers() -> None:
    assert {str(c) for c in wonderq.ErrorCode} == {str(c) for c in broker.errors.ErrorCode}


def test_every_code_maps_to_the_class_the_broker_uses_for_it() -> None:
    for code, broker_cls in broker.errors.ERROR_CLASSES.items():
        cls = wonderq.error_class(str(code))
        assert cls.__name__ == broker_cls.__name__
        assert cls.code == str(code)
        assert issubclass(cls, wonderq.WonderQError)
        assert getattr(wonderq, cls.__name__) is cls


def test_unknown_code_maps_to_the_base_class_and_keeps_the_code() -> None:
    assert wonderq.error_class("new_in_v2") is wonderq.WonderQError
    exc = errors.error_from_reply({"ok": False, "error": "new_in_v2", "message": "later"})
    assert type(exc) is wonderq.WonderQError
    assert (exc.code, exc.message, str(exc)) == ("new_in_v2", "later", "later")


def test_client_side_errors_are_wonderq_errors_without_a_wire_code() -> None:
    for cls in (wonderq.ConnectionLost, wonderq.ProtocolViolation, wonderq.RequestTimeout):
        assert issubclass(cls, wonderq.WonderQError)
        assert cls.code is None
        assert cls.__name__ not in {str(c) for c in wonderq.ErrorCode}
    assert issubclass(wonderq.RequestTimeout, TimeoutError)
    assert not set(dir(builtins)) & set(wonderq.__all__)  # e.g. no class named ConnectionError


@pytest.mark.memory_only("--max-memory (Redis has maxmemory instead)")
async def test_wire_errors_from_a_real_server_carry_its_message(
    client: wonderq.AsyncClient, make_broker: Any
) -> None:
    with pytest.raises(wonderq.BadRequest, match=r"\$\.max"):
        await client.get("jobs", max=0)
    with pytest.raises(wonderq.NotFound):
        await client.info("no-such-id")
    with pytest.raises(wonderq.NotFound):
        await client.stats("no-such-queue")
    with pytest.raises(wonderq.LineTooLong):
        await client.put("jobs", "x" * (1024 * 1024 + 1))
    with pytest.raises(wonderq.UnknownOp, match="FROB"):
        await client._call({"op": "FROB"})
    msg_id = await client.put("jobs", 1)
    with pytest.raises(wonderq.NotLeased) as info:
        await client.ack(msg_id)
    assert info.value.code == "not_leased" and info.value.message
    await client.ping()  # no error closes the connection

    async with (
        # room for two queues of one small message each (3782 bytes), not three (footprint.py)
        make_broker(max_queue_length=1, max_body=10, max_memory=10_000) as server,
        await wonderq.connect("127.0.0.1", server.port) as small,
    ):
        with pytest.raises(wonderq.TooLarge):
            await small.put("q", "x" * 20)
        await small.put("q", "x" * 8)
        with pytest.raises(wonderq.QueueFull):
            await small.put("q", 1)
        await small.put("r", "y" * 8)
        with pytest.raises(wonderq.MemoryLimit):
            await small.put("s", "z" * 8)


async def test_error_replies_from_a_fake_server_map_to_their_class(fake_server: Any) -> None:
    codes = [str(c) for c in wonderq.ErrorCode] + ["brand_new"]

    async def handler(conn: Any) -> None:
        for code in codes:
            request = await conn.request()
            conn.send(
                {"ok": False, "error": code, "message": f"said {code}", "rid": request["rid"]}
            )
        await conn.reader.read()

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        for code in codes:
            with pytest.raises(wonderq.WonderQError) as info:
                await c.ping()
            assert info.value.code == code
            assert info.value.message == f"said {code}"
            assert type(info.value) is wonderq.error_class(code)


async def test_token_is_sent_first_and_a_refusal_raises_unauthorized(fake_server: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(conn: Any) -> None:
        request = await conn.request()
        seen.append(request)
        conn.send(
            {"ok": False, "error": "unauthorized", "message": "bad token", "rid": request["rid"]}
        )
        await conn.reader.read()

    async with fake_server(handler) as port:
        with pytest.raises(wonderq.Unauthorized, match="bad token"):
            await wonderq.connect("127.0.0.1", port, token="s3cret")
    assert seen == [{"op": "AUTH", "token": "s3cret", "rid": 1}]


async def test_a_body_that_is_not_json_raises_type_error_and_sends_nothing(
    client: wonderq.AsyncClient,
) -> None:
    with pytest.raises(TypeError):
        await client.put("jobs", object())
    async with asyncio.timeout(5):
        await client.ping()
