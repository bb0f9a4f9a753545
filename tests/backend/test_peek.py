"""PEEK in the backend: any sequence of peeks leaves replies, stats and deliveries unchanged.

Two in-memory backends run the same steps; one also peeks before every step.
(What PEEK lists and in which order, over the wire: tests/server/test_peek.py.)
"""

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
from broker.protocol.codec import Invalid, decode
from broker.protocol.replies import Reply, to_builtins


@dataclass
class Sink:
    peer: str
    requests_served: int = 0
    delivered: list[Any] = field(default_factory=list)

    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        self.delivered.append(plain(reply))


def plain(reply: Any) -> Any:
    """A backend reply as plain JSON values, as a client reads it."""
    return to_builtins(reply)


def request(**fields: Any) -> rq.Request:
    decoded = decode(msgspec.json.encode(fields), 1 << 20)
    assert not isinstance(decoded, Invalid), decoded
    return decoded


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
        stats: list[Any] = []
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
