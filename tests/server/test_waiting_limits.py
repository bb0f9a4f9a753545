"""Waiting GETs per connection: at most --max-waiting; CANCEL by rid (both backends)."""

from __future__ import annotations

from tests.conftest import ServerFactory
from tests.support import LineClient


async def test_a_connection_may_have_at_most_max_waiting_waiting_gets(
    server_factory: ServerFactory,
) -> None:
    async with (
        server_factory(max_waiting=3) as srv,
        await LineClient.connect(srv.port) as c,
        await LineClient.connect(srv.port) as other,
    ):
        for i in range(3):
            await c.send(op="GET", queue=f"q{i % 2}", wait=60, rid=i)
        refused = await c.call(op="GET", queue="q9", wait=60, rid="over")
        assert refused["error"] == "bad_request" and refused["rid"] == "over"
        assert "max-waiting" in refused["message"] and "3" in refused["message"]
        assert (await c.call(op="GET", queue="q9"))["messages"] == []  # no wait: not counted
        await other.send(op="GET", queue="q9", wait=60, rid="o")  # its own count
        assert (await other.call(op="PING", rid="p"))["rid"] == "p"
        await c.send(op="CANCEL", get=1, rid="c")
        assert await c.reply() == {"ok": True, "messages": [], "rid": 1}
        assert await c.reply() == {"ok": True, "cancelled": 1, "rid": "c"}
        await c.send(op="GET", queue="q9", wait=60, rid="again")  # room for one more
        put = await c.call(op="PUT", queue="q9", body="x", rid="put")
        assert put["ok"] is True and put["rid"] == "put"
        # the PUT serves the GETs on q9 in arrival order: other's, not c's "again"
        assert (await other.reply())["messages"][0]["body"] == "x"
        stats = await c.call(op="STATS", connections=True)
        assert sorted(conn["waiting"] for conn in stats["connections"]) == [0, 3]
