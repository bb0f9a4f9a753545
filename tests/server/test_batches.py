"""Batch PUT, GET and ACK over the wire: the fast paths' edge cases.

Each batch op has a fast path for the common case (plain items, ids that are all
ours); these cases are the ones a fast path could get wrong: a bad entry among
good ones, the batch limit exactly, empty and unicode bodies, odd ids.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.engine import format_id
from broker.server import Server
from tests.conftest import ServerFactory
from tests.support import LineClient


async def _drain(c: LineClient, queue: str, n: int) -> list[dict[str, Any]]:
    got = await c.call(op="GET", queue=queue, max=n)
    assert got["ok"] is True
    messages: list[dict[str, Any]] = got["messages"]
    return messages


async def test_a_batch_put_stores_every_kind_of_item_in_order(server: Server) -> None:
    bodies: list[Any] = ["", "é ✓ 😀", {"k": [1, 2.5, None, True]}, 0, "line\nbreak", "\u2028"]
    items: list[dict[str, Any]] = [{"body": b} for b in bodies]
    items[2]["key"] = "k1"
    items[3]["priority"] = 0
    items[4]["max_attempts"] = 7
    async with await LineClient.connect(server.port) as c:
        put = await c.call(op="PUT", queue="b", messages=items)
        assert put["ok"] is True and len(put["ids"]) == len(bodies)
        assert len(set(put["ids"])) == len(bodies)
        got = await _drain(c, "b", 100)
        assert [m["body"] for m in got] == bodies
        assert [m["id"] for m in got] == put["ids"]
        assert [m.get("key") for m in got] == [None, None, "k1", None, None, None]
        info = await c.call(op="INFO", id=put["ids"][4])
        assert info["message"]["max_attempts"] == 7


@pytest.mark.memory_only("the engine's hex ids")
async def test_batch_put_ids_are_the_messages_ids(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        for n in (1, 2, 64):
            put = await c.call(op="PUT", queue=f"ids{n}", messages=[{"body": i} for i in range(n)])
            got = await _drain(c, f"ids{n}", n)
            assert put["ids"] == [m["id"] for m in got]
            assert all(i == format_id(int(i, 16)) for i in put["ids"])


async def test_one_bad_entry_rejects_the_whole_batch_naming_it(server: Server) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"body": 1, "delay": -1}, "$.messages[1].delay"),
        ({"body": 1, "priority": 2**40}, "$.messages[1].priority"),
        ({"body": 1, "key": ""}, "$.messages[1].key"),
        ({"body": 1, "max_attempts": 0}, "$.messages[1].max_attempts"),
        ({"bdoy": 1}, "bdoy"),
        ({}, "body"),
    ]
    async with await LineClient.connect(server.port) as c:
        for bad, words in cases:
            items = [{"body": "ok"}, bad, {"body": "also ok"}]
            reply = await c.call(op="PUT", queue="mixed", messages=items)
            assert reply["ok"] is False and reply["error"] == "bad_request", reply
            assert words in reply["message"], (words, reply)
        assert await _drain(c, "mixed", 100) == []  # all or nothing


async def test_a_too_large_entry_rejects_the_whole_batch(server_factory: ServerFactory) -> None:
    async with server_factory(max_body=100) as srv, await LineClient.connect(srv.port) as c:
        items = [{"body": "a"}, {"body": "z" * 200}, {"body": "b"}]
        reply = await c.call(op="PUT", queue="big", messages=items)
        assert reply["error"] == "too_large" and "max-body" in reply["message"]
        assert await _drain(c, "big", 100) == []


async def test_the_batch_limit_exactly(server_factory: ServerFactory) -> None:
    async with server_factory(max_batch=5) as srv, await LineClient.connect(srv.port) as c:
        put = await c.call(op="PUT", queue="lim", messages=[{"body": i} for i in range(5)])
        assert put["ok"] is True and len(put["ids"]) == 5
        over = await c.call(op="PUT", queue="lim", messages=[{"body": i} for i in range(6)])
        assert over["error"] == "bad_request"
        assert (
            "holds more than 5 messages" in over["message"]
            and "(max-batch) is 5" in over["message"]
        )
        got = await _drain(c, "lim", 100)
        assert len(got) == 5
        ack = await c.call(op="ACK", ids=[m["id"] for m in got])
        assert ack == {"ok": True, "acked": 5, "not_leased": [], "not_found": []}
        over = await c.call(op="ACK", ids=["a"] * 6)
        assert over["error"] == "bad_request"
        assert "holds more than 5 ids" in over["message"] and "(max-batch) is 5" in over["message"]


@pytest.mark.memory_only("the engine's id format")
async def test_a_batch_ack_sorts_out_ids_that_cannot_be_ours(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="a", messages=[{"body": i} for i in range(3)])
        got = await _drain(c, "a", 3)
        ids = [m["id"] for m in got]
        odd = [ids[0].upper() + "G", "0x" + ids[1], "é", "f" * 25, " " + ids[1], "-1"]
        reply = await c.call(op="ACK", ids=[ids[0], *odd, ids[1], "f" * 24])
        assert reply["ok"] is True and reply["acked"] == 2
        assert reply["not_leased"] == []
        assert reply["not_found"] == ["f" * 24, *odd]  # parsable first, then the rest
        again = await c.call(op="ACK", ids=[ids[0], ids[2], ids[2]])
        assert again == {"ok": True, "acked": 1, "not_leased": [ids[0], ids[2]], "not_found": []}


async def test_a_batch_ack_of_ids_that_are_all_hex(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="h", messages=[{"body": i} for i in range(64)])
        ids = [m["id"] for m in await _drain(c, "h", 64)]
        unknown = ["0", "f" * 24]  # hex, but no message of ours
        reply = await c.call(op="ACK", ids=[*ids, *unknown])
        assert reply == {"ok": True, "acked": 64, "not_leased": [], "not_found": unknown}
        assert (await c.call(op="ACK", ids=[""]))["error"] == "bad_request"  # by its type
