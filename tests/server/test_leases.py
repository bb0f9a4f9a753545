"""Leases over real TCP: ownership, disconnect, expiry, dead letters."""

from __future__ import annotations

import msgspec

from broker.server import Server
from tests.conftest import ServerFactory
from tests.support import LineClient


async def test_put_get_ack_roundtrip(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        put = await c.call(op="PUT", queue="jobs", body={"n": 1}, rid=1)
        assert put["ok"] is True and put["rid"] == 1 and isinstance(put["id"], str)
        got = await c.call(op="GET", queue="jobs")
        assert got == {
            "ok": True,
            "messages": [{"id": put["id"], "queue": "jobs", "body": {"n": 1}, "attempts": 1}],
        }
        assert await c.call(op="ACK", id=put["id"]) == {"ok": True}
        assert (await c.call(op="INFO", id=put["id"]))["message"]["state"] == "acked"
        assert (await c.call(op="GET", queue="jobs"))["messages"] == []


async def test_only_the_lease_holder_may_ack_nack_touch(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as a,
        await LineClient.connect(server.port) as b,
    ):
        mid = (await a.call(op="PUT", queue="q", body="x"))["id"]
        assert (await a.call(op="GET", queue="q"))["messages"][0]["id"] == mid
        for op in ("ACK", "NACK", "TOUCH"):
            reply = await b.call(op=op, id=mid)
            assert reply["ok"] is False and reply["error"] == "not_leased", reply
            assert mid in reply["message"]
        assert (await b.call(op="ACK", id="ffffffff"))["error"] == "not_found"
        assert await a.call(op="ACK", id=mid) == {"ok": True}
        assert (await a.call(op="ACK", id=mid))["error"] in ("not_found", "not_leased")


async def test_disconnect_releases_every_lease_at_once(server: Server) -> None:
    async with await LineClient.connect(server.port) as producer:
        ids = (await producer.call(op="PUT", queue="q", messages=[{"body": i} for i in range(5)]))[
            "ids"
        ]
        consumer = await LineClient.connect(server.port)
        got = await consumer.call(op="GET", queue="q", max=10, lease=600)
        assert [m["id"] for m in got["messages"]] == ids
        # another consumer waits; the disconnect must wake it at once (lease is 600 s)
        await producer.send(op="GET", queue="q", max=10, wait=10, rid="w")
        await consumer.close()
        woke = await producer.reply(timeout=5)
        assert woke["rid"] == "w"
        assert [m["id"] for m in woke["messages"]] == ids
        assert all(m["attempts"] == 2 for m in woke["messages"])
        stats = (await producer.call(op="STATS", queue="q"))["queues"]["q"]
        assert stats["released_on_disconnect"] == 5 and stats["leased"] == 5


async def test_lease_timeout_releases_and_late_ack_is_refused(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as a,
        await LineClient.connect(server.port) as b,
    ):
        mid = (await a.call(op="PUT", queue="q", body="slow"))["id"]
        assert (await a.call(op="GET", queue="q", lease=0.05))["messages"]
        # b waits; the expiry (one server timer) must hand the message over
        got = await b.call(op="GET", queue="q", wait=5)
        assert got["messages"][0]["id"] == mid and got["messages"][0]["attempts"] == 2
        late = await a.call(op="ACK", id=mid)
        assert late["error"] == "not_leased"
        assert await b.call(op="ACK", id=mid) == {"ok": True}
        stats = (await a.call(op="STATS", queue="q"))["queues"]["q"]
        assert stats["expired"] == 1 and stats["acked"] == 1


async def test_touch_extends_a_lease(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as a,
        await LineClient.connect(server.port) as b,
    ):
        mid = (await a.call(op="PUT", queue="q", body=1))["id"]
        await a.call(op="GET", queue="q", lease=0.3)
        assert await a.call(op="TOUCH", id=mid, lease=30) == {"ok": True}
        # past the original deadline, the message is still leased
        assert (await b.call(op="GET", queue="q", wait=0.6))["messages"] == []
        info = (await a.call(op="INFO", id=mid))["message"]
        assert info["state"] == "leased" and info["lease_left"] > 25


async def test_nack_delay_and_dead_letter_then_redrive(server_factory: ServerFactory) -> None:
    async with server_factory(max_attempts=2) as srv, await LineClient.connect(srv.port) as c:
        mid = (await c.call(op="PUT", queue="jobs", body="poison"))["id"]
        await c.call(op="GET", queue="jobs")
        assert await c.call(op="NACK", id=mid, delay=0.05) == {"ok": True}
        assert (await c.call(op="INFO", id=mid))["message"]["state"] == "delayed"
        got = await c.call(op="GET", queue="jobs", wait=5)
        assert got["messages"][0]["attempts"] == 2
        assert await c.call(op="NACK", id=mid) == {"ok": True, "dead": True}
        info = (await c.call(op="INFO", id=mid))["message"]
        assert info["state"] == "dead" and info["queue"] == "jobs.dead"
        stats = (await c.call(op="STATS"))["queues"]
        assert stats["jobs"]["dead_lettered"] == 1 and stats["jobs"]["dead"] == 1
        assert stats["jobs.dead"]["ready"] == 1
        assert await c.call(op="REDRIVE", queue="jobs") == {"ok": True, "redriven": 1}
        again = await c.call(op="GET", queue="jobs")
        assert again["messages"][0]["id"] == mid and again["messages"][0]["attempts"] == 1


async def test_keys_serialise_across_connections(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as a,
        await LineClient.connect(server.port) as b,
    ):
        first = (await a.call(op="PUT", queue="k", body=1, key="acct-1"))["id"]
        second = (await a.call(op="PUT", queue="k", body=2, key="acct-1"))["id"]
        other = (await a.call(op="PUT", queue="k", body=3, key="acct-2"))["id"]
        assert [m["id"] for m in (await a.call(op="GET", queue="k"))["messages"]] == [first]
        # b may not get acct-1's second message while the first is leased
        got = await b.call(op="GET", queue="k", max=10)
        assert [m["id"] for m in got["messages"]] == [other]
        await b.send(op="GET", queue="k", wait=5, rid="w")
        await a.call(op="ACK", id=first)
        woke = await b.reply()
        assert woke["rid"] == "w" and woke["messages"][0]["id"] == second
        assert woke["messages"][0]["key"] == "acct-1"


async def test_batch_put_is_all_or_nothing(server_factory: ServerFactory) -> None:
    async with server_factory(max_body=10) as srv, await LineClient.connect(srv.port) as c:
        reply = await c.call(
            op="PUT", queue="q", messages=[{"body": "ok"}, {"body": "x" * 50}], rid=3
        )
        assert reply["error"] == "too_large" and reply["rid"] == 3
        assert "max-body" in reply["message"]
        assert "q" not in (await c.call(op="STATS"))["queues"]  # a refused PUT makes no queue


async def test_queue_full(server_factory: ServerFactory) -> None:
    async with server_factory(max_queue_length=2) as srv, await LineClient.connect(srv.port) as c:
        await c.call(op="PUT", queue="q", messages=[{"body": 1}, {"body": 2}])
        reply = await c.call(op="PUT", queue="q", body=3)
        assert reply["error"] == "queue_full" and "max-queue-length" in reply["message"]
        assert (await c.call(op="PUT", queue="other", body=3))["ok"] is True


async def test_priority_then_put_order(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        for body, prio in (("a", 0), ("b", 5), ("c", -1), ("d", 0)):
            await c.call(op="PUT", queue="p", body=body, priority=prio)
        got = await c.call(op="GET", queue="p", max=10)
        assert [m["body"] for m in got["messages"]] == ["c", "a", "d", "b"]


async def test_delay(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="d", body="later", delay=0.1)
        assert (await c.call(op="GET", queue="d"))["messages"] == []
        got = await c.call(op="GET", queue="d", wait=5)
        assert [m["body"] for m in got["messages"]] == ["later"]


async def test_purge_queues_ping(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="b", body=1)
        await c.call(op="PUT", queue="a", body=1, delay=60)
        assert await c.call(op="QUEUES") == {"ok": True, "queues": ["a", "b"]}
        assert await c.call(op="PURGE", queue="a") == {"ok": True, "purged": 1}
        assert await c.call(op="PING", rid="p") == {"ok": True, "rid": "p"}
        stats = await c.call(op="STATS")
        assert stats["server"]["connections"] == 1
        assert stats["server"]["version"]
        assert (await c.call(op="STATS", queue="nope"))["error"] == "not_found"


async def test_waiting_gets_served_in_arrival_order(server: Server) -> None:
    clients = [await LineClient.connect(server.port) for _ in range(3)]
    try:
        for i, c in enumerate(clients):
            await c.send(op="GET", queue="w", wait=10, rid=i)
            # the PING's reply proves the GET before it was processed (and is parked)
            assert await c.call(op="PING", rid="p") == {"ok": True, "rid": "p"}
        async with await LineClient.connect(server.port) as p:
            stats = await p.call(op="STATS", connections=True)
            assert "w" not in stats["queues"]  # they wait on its name: a GET makes no queue
            assert sorted(c["waiting"] for c in stats["connections"]) == [0, 1, 1, 1]
            for n in range(3):
                await p.call(op="PUT", queue="w", body=n)
        bodies = [(await c.reply())["messages"][0]["body"] for c in clients]
        assert bodies == [0, 1, 2]
    finally:
        for c in clients:
            await c.close()


async def test_ids_are_unique_across_restarts(server_factory: ServerFactory) -> None:
    seen: set[str] = set()
    for _ in range(3):
        async with server_factory() as srv, await LineClient.connect(srv.port) as c:
            reply = await c.call(op="PUT", queue="q", messages=[{"body": i} for i in range(50)])
            ids = set(reply["ids"])
            assert len(ids) == 50 and not ids & seen
            seen |= ids


async def test_a_lease_past_its_deadline_is_expired_before_the_next_request() -> None:
    """Even if the loop's timer has not fired yet, an ACK after the deadline is refused."""
    from broker.backend.memory import MemoryBackend
    from broker.config import Config
    from broker.protocol import requests as rq
    from broker.protocol.replies import ErrorReply, PutReply

    clock = [0.0]
    backend = MemoryBackend(Config(), first_seq=1, clock=lambda: clock[0])
    await backend.start()
    try:
        owner = backend.open(_NullSink())
        [put] = backend.execute(owner, [rq.Put(queue="q", body=msgspec.Raw(b"1"))])  # type: ignore[misc]
        assert put is not None
        backend.execute(owner, [rq.Get(queue="q", lease=5.0)])
        clock[0] = 5.0  # the deadline; the loop timer has not run (it is armed on the loop)
        assert isinstance(put, PutReply)
        [ack] = backend.execute(owner, [rq.Ack(id=put.id)])  # type: ignore[misc]
        assert isinstance(ack, ErrorReply) and ack.error == "not_leased"
    finally:
        await backend.stop()


class _NullSink:
    def deliver(self, request: object, reply: object) -> None:
        raise AssertionError("no waiting GET in this test")
