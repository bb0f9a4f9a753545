"""PEEK: what it lists, in which order, and that looking never changes anything."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.backend.memory import MemoryBackend
from broker.config import Config
from broker.protocol import requests as rq
from broker.protocol.codec import decode
from broker.protocol.replies import Reply, to_builtins
from broker.server import Server
from tests.support import LineClient

# --------------------------------------------------------------- over the wire


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


# ------------------------------------------------- property: peeking is inert


@dataclass
class Sink:
    peer: str
    requests_served: int = 0
    delivered: list[Any] = field(default_factory=list)

    def deliver(self, request: rq.Request, reply: Reply) -> None:
        self.delivered.append(plain(reply))


def plain(reply: Any) -> Any:
    """A backend reply as plain JSON values, as a client reads it."""
    return to_builtins(reply)


def request(**fields: Any) -> rq.Request:
    decoded = decode(msgspec.json.encode(fields), 1 << 20)
    assert not hasattr(decoded, "error"), decoded
    return decoded  # type: ignore[return-value]


QUEUES = ("a", "b", "a.dead")
put_op = st.builds(
    lambda q, n, key, delay, prio: {
        "op": "PUT",
        "queue": q,
        "messages": [
            {"body": i, **({"key": key} if key else {}), "delay": delay, "priority": prio}
            for i in range(n)
        ],
    },
    st.sampled_from(QUEUES[:2]),
    st.integers(1, 3),
    st.sampled_from([None, "k1", "k2"]),
    st.sampled_from([0, 0, 5]),
    st.integers(-1, 1),
)
get_op = st.builds(
    lambda q, n, wait: {"op": "GET", "queue": q, "max": n, "lease": 10, "wait": wait},
    st.sampled_from(QUEUES),
    st.integers(1, 3),
    st.sampled_from([0, 0, 5]),
)
peek_op = st.builds(
    lambda q, state, limit: {
        "op": "PEEK",
        "queue": q,
        **({"state": state} if state else {}),
        "limit": limit,
    },
    st.sampled_from((*QUEUES, "missing")),
    st.sampled_from([None, "ready", "delayed", "leased", "dead"]),
    st.integers(1, 5),
)
step = st.tuples(st.integers(0, 1), st.one_of(put_op, get_op, st.just({"op": "NACK"})))


def run_twins(steps: list[tuple[int, dict[str, Any]]], peeks: list[list[dict[str, Any]]]) -> None:
    """The same steps on two backends; one also peeks before every step. They must agree."""

    async def scenario() -> None:
        now = asyncio.get_running_loop().time()
        twins = []
        for _ in range(2):
            backend = MemoryBackend(Config(), first_seq=1, clock=lambda: now)
            await backend.start()
            sinks = [Sink("10.0.0.1:1"), Sink("10.0.0.2:2")]
            owners = [backend.open(s) for s in sinks]
            twins.append((backend, sinks, owners))
        replies: list[list[Any]] = [[], []]
        held: list[list[str]] = [[], []]
        for i, (who, op) in enumerate(steps):
            for t, (backend, _sinks, owners) in enumerate(twins):
                if t == 1:
                    for peek in peeks[i % len(peeks)]:
                        reply = backend.execute(owners[who], [request(**peek)])
                        assert isinstance(reply, list)
                if op["op"] == "NACK":
                    if not held[t]:
                        continue
                    op = {"op": "NACK", "id": held[t].pop(0)}
                out = backend.execute(owners[who], [request(**op)])
                assert isinstance(out, list)
                reply = plain(out[0])
                if reply is not None and "messages" in reply:
                    held[t].extend(m["id"] for m in reply["messages"])
                replies[t].append(plain(reply))
        stats = []
        for backend, sinks, owners in twins:
            out = backend.execute(owners[0], [request(op="STATS")])
            assert isinstance(out, list)
            reply = plain(out[0])
            stats.append((reply["queues"], reply["server"]["messages"], reply["server"]["leased"]))
            drained = []
            for q in QUEUES:
                out = backend.execute(owners[0], [request(op="GET", queue=q, max=100)])
                assert isinstance(out, list)
                drained.append(plain(out[0]))
            stats.append(drained)
            stats.append([s.delivered for s in sinks])
            await backend.stop()
        assert replies[0] == replies[1]
        assert stats[:3] == stats[3:]

    asyncio.run(scenario())


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=25), st.lists(st.lists(peek_op, max_size=3), min_size=1, max_size=5))
def test_any_sequence_of_peeks_leaves_stats_and_deliveries_unchanged(
    steps: list[tuple[int, dict[str, Any]]], peeks: list[list[dict[str, Any]]]
) -> None:
    run_twins(steps, peeks)
