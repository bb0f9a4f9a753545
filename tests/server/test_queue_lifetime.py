"""Which requests make a queue, and when an idle one is forgotten (both backends).

A queue is made only by what stores in it (PUT, CONFIG, PAUSE); GET, waiting
GETs, STATS, PEEK, INFO and PURGE never make one, and a refused PUT makes
none. An empty queue with default settings, no lease and no waiting GET is
forgotten after ``forget_after_s`` (in memory, between one and two times it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import ServerFactory
from tests.support import LineClient

FORGET_S = 0.2


async def names(c: LineClient) -> list[str]:
    reply = await c.call(op="QUEUES")
    listed: list[str] = reply["queues"]
    return listed


async def test_only_requests_that_store_make_a_queue(server_factory: ServerFactory) -> None:
    async with (
        server_factory(max_body=8) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        looks: list[dict[str, Any]] = [
            {"op": "GET", "queue": "g"},
            {"op": "STATS", "queue": "s"},
            {"op": "PEEK", "queue": "p"},
            {"op": "INFO", "id": "12345"},
            {"op": "PURGE", "queue": "u"},
            {"op": "REDRIVE", "queue": "r"},
            {"op": "PUT", "queue": "big", "body": "x" * 20},  # refused: too_large
        ]
        for request in looks:
            await c.call(**request)
        await c.send(op="GET", queue="w", wait=30, rid="w")  # waits on the name
        assert (await c.call(op="PING", rid="p"))["rid"] == "p"
        assert await names(c) == []
        assert (await c.call(op="STATS", queue="w"))["error"] == "not_found"
        stats = await c.call(op="STATS", connections=True)
        assert stats["queues"] == {} and stats["connections"][0]["waiting"] == 1
        await c.call(op="CONFIG", queue="c", lease=5)
        await c.call(op="PAUSE", queue="z")
        await c.send(op="PUT", queue="w", body=1, rid="put")
        replies = {r["rid"]: r for r in (await c.reply(), await c.reply())}
        assert replies["put"]["ok"] is True
        assert replies["w"]["messages"][0]["body"] == 1  # the PUT that made "w" served it
        assert await names(c) == ["c", "w", "z"]


async def test_a_waiting_get_on_no_queue_that_runs_out_leaves_nothing(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as srv, await LineClient.connect(srv.port) as c:
        got = await c.call(op="GET", queue="nobody", wait=0.05)
        assert got == {"ok": True, "messages": []}
        await c.send(op="GET", queue="nobody", wait=30, rid=1)
        assert await c.call(op="CANCEL", get=1) == {"ok": True, "messages": [], "rid": 1}
        assert await c.reply() == {"ok": True, "cancelled": 1}
        assert await names(c) == []
        stats = await c.call(op="STATS", connections=True)
        assert stats["connections"][0]["waiting"] == 0


async def test_an_idle_queue_is_forgotten_and_a_busy_one_is_kept(
    server_factory: ServerFactory,
) -> None:
    async with (
        server_factory(forget_after_s=FORGET_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        for queue in ("idle", "held", "set"):
            await c.call(op="PUT", queue=queue, body=1)
        got = await c.call(op="GET", queue="idle")
        await c.call(op="ACK", id=got["messages"][0]["id"])
        await c.call(op="CONFIG", queue="set", max_attempts=2)
        assert (await c.call(op="STATS", queue="idle"))["queues"]["idle"]["acked"] == 1
        # forgetting is a timer (the broker's, or Redis's key expiry): no event to await,
        # so look a bounded number of times; within two passes it is gone
        for _ in range(40):
            if "idle" not in await names(c):
                break
            await asyncio.sleep(FORGET_S / 4)
        assert await names(c) == ["held", "set"]  # a message, a setting: both kept
        assert (await c.call(op="STATS", queue="idle"))["error"] == "not_found"
        acked = await c.call(op="INFO", id=got["messages"][0]["id"])
        assert acked["message"]["state"] == "acked"  # the acked history keeps its name
        await c.call(op="PUT", queue="idle", body=2)
        again = (await c.call(op="STATS", queue="idle"))["queues"]["idle"]
        assert (again["put"], again["acked"]) == (1, 0)  # made again: from zero
