"""PURGE, REDRIVE and PEEK of a queue among many (both backends): what they answer, in
order on the connection. (That they cost what their queue holds and run in slices on
the in-memory backend: tests/engine/test_sliced.py, tests/backend/test_slices.py.)"""

from __future__ import annotations

from typing import Any

from broker.server import Server
from tests.support import LineClient


async def put_many(c: LineClient, queue: str, n: int, **fields: Any) -> None:
    for _ in range(n // 500):
        reply = await c.call(op="PUT", queue=queue, messages=[{"body": 1, **fields}] * 500)
        assert reply["ok"] is True


async def test_purge_redrive_and_peek_among_many_answer_in_order(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as c,
        await LineClient.connect(server.port) as other,
    ):
        await put_many(c, "big", 3000, priority=1)
        await put_many(c, "back.dead", 2000)
        await c.call(op="PUT", queue="small", body="s", key="k")
        peek = await c.call(op="PEEK", queue="small")
        assert peek["total"] == 1 and [m["body"] for m in peek["messages"]] == ["s"]
        lines = [
            {"op": "PURGE", "queue": "big", "rid": 1},
            {"op": "PUT", "queue": "big", "body": "after", "rid": 2},
            {"op": "STATS", "queue": "big", "rid": 3},
            {"op": "REDRIVE", "queue": "back", "rid": 4},
            {"op": "STATS", "queue": "back", "rid": 5},
        ]
        for line in lines:
            await c.send(**line)
        assert (await other.call(op="PING", rid="o"))["rid"] == "o"
        replies = [await c.reply() for _ in lines]
        assert [r["rid"] for r in replies] == [1, 2, 3, 4, 5]
        assert replies[0]["purged"] == 3000 and replies[1]["ok"] is True
        assert replies[2]["queues"]["big"]["ready"] == 1  # only what came after the PURGE
        assert replies[3]["redriven"] == 2000
        assert replies[4]["queues"]["back"]["ready"] == 2000


async def test_no_get_or_peek_reply_holds_more_than_a_mib_of_bodies_and_headers(
    server: Server,
) -> None:
    async with await LineClient.connect(server.port) as c:
        headers = {"h": "v" * 4000}
        for _ in range(4):
            batch = [{"body": "b", "headers": headers}] * 100
            assert (await c.call(op="PUT", queue="h", messages=batch))["ok"] is True
        requests: list[dict[str, Any]] = [
            {"op": "GET", "queue": "h", "max": 1000},
            {"op": "PEEK", "queue": "h", "limit": 1000},
        ]
        for request in requests:
            await c.send(**request)
            line = await c.reader.readline()
            assert 900_000 < len(line) < 1.1 * 1024 * 1024, len(line)  # not 400 x 4 kB
