"""PEEK over the wire: what it lists, in which order, its bounds and errors.

(That looking never changes anything: tests/backend/test_peek.py.)
"""

from __future__ import annotations

from typing import Any

from broker.server import Server
from tests.support import LineClient


async def test_peek_lists_each_state_in_its_order_with_holder_and_total(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as c,
        await LineClient.connect(server.port) as other,
    ):
        ids = (await c.call(op="PUT", queue="jobs", messages=[{"body": i} for i in range(5)]))[
            "ids"
        ]
        await c.call(op="PUT", queue="jobs", body="urgent", priority=-1)
        await c.call(op="PUT", queue="jobs", body="later", delay=60, key="k")
        await c.call(op="PUT", queue="jobs", body="sooner", delay=30)
        leased = (await other.call(op="GET", queue="jobs", max=2, lease=100))["messages"]
        assert [m["body"] for m in leased] == ["urgent", 0]

        ready = await c.call(op="PEEK", queue="jobs", state="ready", limit=3)
        assert ready["total"] == 4
        assert [m["id"] for m in ready["messages"]] == ids[1:4]
        assert all(m["state"] == "ready" and m["attempts"] == 0 for m in ready["messages"])

        delayed = await c.call(op="PEEK", queue="jobs", state="delayed")
        assert [m["body"] for m in delayed["messages"]] == ["sooner", "later"]
        assert delayed["messages"][1]["key"] == "k"
        assert 29 < delayed["messages"][0]["delay_left"] <= 30

        held = await c.call(op="PEEK", queue="jobs", state="leased")
        host, port = other.writer.get_extra_info("sockname")[:2]
        assert [m["holder"] for m in held["messages"]] == [f"{host}:{port}"] * 2
        assert all(99 < m["lease_left"] <= 100 for m in held["messages"])

        every = await c.call(op="PEEK", queue="jobs", limit=1000)
        assert every["total"] == 8 and len(every["messages"]) == 8
        assert every["messages"][0]["body"] == "urgent"  # queue order: priority, then put order


async def test_peek_dead_lists_the_dead_letter_queue(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", body="poison", max_attempts=1)
        (msg,) = (await c.call(op="GET", queue="jobs"))["messages"]
        assert (await c.call(op="NACK", id=msg["id"]))["dead"] is True
        dead = await c.call(op="PEEK", queue="jobs", state="dead")
        assert dead["total"] == 1
        assert [(m["id"], m["state"], m["queue"]) for m in dead["messages"]] == [
            (msg["id"], "dead", "jobs.dead")
        ]
        assert (await c.call(op="PEEK", queue="other", state="dead"))["error"] == "not_found"
        await c.call(op="PUT", queue="fine", body=1)
        assert await c.call(op="PEEK", queue="fine", state="dead") == {
            "ok": True,
            "messages": [],
            "total": 0,
        }


async def test_peek_bounds_and_errors(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        missing = await c.call(op="PEEK", queue="nope")
        assert missing["error"] == "not_found"
        assert (await c.call(op="QUEUES"))["queues"] == []  # looking created nothing
        await c.call(op="PUT", queue="q", body=1)
        for bad in ({"limit": 0}, {"limit": 1001}, {"state": "acked"}, {"limit": "3"}):
            reply = await c.call(op="PEEK", queue="q", **bad)
            assert reply["error"] == "bad_request", reply
        assert (await c.line("PEEK q ready 1"))["total"] == 1
        assert (await c.line("peek q"))["messages"][0]["body"] == 1


async def test_peek_reply_is_bounded_like_get(server_factory: Any) -> None:
    async with server_factory(max_reply_bytes=1000) as srv, await LineClient.connect(srv.port) as c:
        await c.call(op="PUT", queue="big", messages=[{"body": "x" * 400} for _ in range(5)])
        reply = await c.call(op="PEEK", queue="big", limit=5)
        assert len(reply["messages"]) == 2 and reply["total"] == 5
        await c.call(op="PUT", queue="huge", body="y" * 5000)
        assert len((await c.call(op="PEEK", queue="huge"))["messages"]) == 1
