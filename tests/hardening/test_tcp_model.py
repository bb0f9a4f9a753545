"""The real TCP server against a deliberately naive model, driven by Hypothesis.

tests/engine has the engine-level machine (every rule, with time). This one
covers what sits between a client and the engine: framing, the codec (JSON
and shorthand), pipelining, the backend's handlers and reply formatting, and
connection close releasing leases. Leases are long (never expire during a
run) and there are no delays, so the model needs no clock.

The model keeps every message in one dict and answers every question by
scanning it: a message is deliverable when it is ready and it is the earliest
message of its key left in its queue; deliverable messages go out by
(priority, order). A release keeps the message's order; a dead-letter or a
redrive gives it a new, last one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import pytest
import uvloop
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from broker.config import Config
from broker.server import Server
from tests.support import LineClient

T = TypeVar("T")

MAX_ATTEMPTS = 2
LEASE_S = 600  # never runs out during a run
QUEUES = ("a", "b")
ALL_QUEUES = ("a", "b", "a.dead", "b.dead")
CLIENTS = (0, 1, 2)
# weighted towards one queue, so runs pile messages up and reach keys and dead letters
queues = st.sampled_from(["a", "a", "a", "b"])
any_queues = st.sampled_from(["a", "a", "a", "b", "a.dead", "a.dead", "b.dead"])

bodies = st.one_of(
    st.integers(-1000, 1000),
    st.text(max_size=6),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), st.booleans(), max_size=2),
    st.none(),
)
keys = st.sampled_from([None, None, "k1", "k2"])
priorities = st.sampled_from([0, 0, -1, 5])


@dataclass
class M:
    id: str
    queue: str
    body: Any
    key: str | None
    priority: int
    max_attempts: int
    order: int
    owner: int | None = None  # leased to this client, else ready
    attempts: int = 0


class TcpModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        self.server = Server(
            Config(host="127.0.0.1", port=0, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS)
        )
        self.run(self.server.start())
        self.clients = {i: self.run(LineClient.connect(self.server.port)) for i in CLIENTS}
        self.msgs: dict[str, M] = {}
        self.next_order = 0
        self.rid = 0

    # ------------------------------------------------------------- plumbing

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(asyncio.wait_for(coro, 10))

    def call(self, client: int, **request: Any) -> dict[str, Any]:
        self.rid += 1
        reply = self.run(self.clients[client].call(rid=self.rid, **request))
        assert reply.pop("rid") == self.rid, reply
        return reply

    def line(self, client: int, text: str) -> dict[str, Any]:
        return self.run(self.clients[client].line(text))

    def teardown(self) -> None:
        try:
            for c in self.clients.values():
                self.run(c.close())
            self.run(self.server.close())
        finally:
            self.runner.close()

    # ---------------------------------------------------------------- model

    def _order(self) -> int:
        self.next_order += 1
        return self.next_order

    def _add(self, mid: str, queue: str, body: Any, key: str | None, prio: int, ma: int) -> None:
        assert mid not in self.msgs
        self.msgs[mid] = M(mid, queue, body, key, prio, ma, self._order())

    def deliverable(self, queue: str) -> list[M]:
        here = [m for m in self.msgs.values() if m.queue == queue]
        heads: dict[str, int] = {}
        for m in here:
            if m.key is not None:
                heads[m.key] = min(heads.get(m.key, m.order), m.order)
        ready = [m for m in here if m.owner is None and (m.key is None or heads[m.key] == m.order)]
        return sorted(ready, key=lambda m: (m.priority, m.order))

    def release(self, m: M) -> bool:
        """Give a leased message back; True if it was dead-lettered."""
        m.owner = None
        if m.attempts >= m.max_attempts and not m.queue.endswith(".dead"):
            m.queue += ".dead"
            m.order = self._order()
            return True
        return False

    def leased_by(self, client: int) -> list[M]:
        return [m for m in self.msgs.values() if m.owner == client]

    # ---------------------------------------------------------------- rules

    @rule(
        client=st.sampled_from(CLIENTS),
        queue=queues,
        body=bodies,
        key=keys,
        priority=priorities,
        max_attempts=st.sampled_from([None, None, 1, 3]),
    )
    def put(
        self,
        client: int,
        queue: str,
        body: Any,
        key: str | None,
        priority: int,
        max_attempts: int | None,
    ) -> None:
        request: dict[str, Any] = {"op": "PUT", "queue": queue, "body": body}
        if key is not None:
            request["key"] = key
        if priority:
            request["priority"] = priority
        if max_attempts is not None:
            request["max_attempts"] = max_attempts
        reply = self.call(client, **request)
        assert reply["ok"] is True, reply
        self._add(reply["id"], queue, body, key, priority, max_attempts or MAX_ATTEMPTS)

    @rule(
        client=st.sampled_from(CLIENTS),
        queue=queues,
        text=st.text("xyz ", min_size=1, max_size=8),
    )
    def put_shorthand(self, client: int, queue: str, text: str) -> None:
        body = "w" + text.strip() + "w"  # the shorthand trims; never valid JSON
        reply = self.line(client, f"PUT {queue} {body}")
        assert reply["ok"] is True, reply
        self._add(reply["id"], queue, body, None, 0, MAX_ATTEMPTS)

    @rule(
        client=st.sampled_from(CLIENTS),
        queue=queues,
        items=st.lists(st.tuples(bodies, keys, priorities), min_size=1, max_size=4),
    )
    def put_batch(self, client: int, queue: str, items: list[tuple[Any, str | None, int]]) -> None:
        messages = [{"body": b, **({"key": k} if k else {}), "priority": p} for b, k, p in items]
        reply = self.call(client, op="PUT", queue=queue, messages=messages)
        assert reply["ok"] is True and len(reply["ids"]) == len(items), reply
        for mid, (b, k, p) in zip(reply["ids"], items, strict=True):
            self._add(mid, queue, b, k, p, MAX_ATTEMPTS)

    @rule(
        client=st.sampled_from(CLIENTS),
        queue=any_queues,
        max=st.integers(1, 4),
        shorthand=st.booleans(),
    )
    def get(self, client: int, queue: str, max: int, shorthand: bool) -> None:
        expected = []
        for _ in range(max):  # lease one at a time: a leased key blocks its next message
            ready = self.deliverable(queue)
            if not ready:
                break
            m = ready[0]
            m.owner = client
            m.attempts += 1
            expected.append(m)
        if shorthand:
            reply = self.line(client, f"GET {queue} {max} {LEASE_S}")
        else:
            reply = self.call(client, op="GET", queue=queue, max=max, lease=LEASE_S)
        assert reply["ok"] is True, reply
        got = reply["messages"]
        assert [g["id"] for g in got] == [m.id for m in expected], (got, expected)
        for g, m in zip(got, expected, strict=True):
            want = {"id": m.id, "queue": queue, "body": m.body, "attempts": m.attempts}
            if m.key is not None:
                want["key"] = m.key
            assert g == want

    @precondition(lambda self: self.msgs)
    @rule(client=st.sampled_from(CLIENTS), data=st.data(), shorthand=st.booleans())
    def ack(self, client: int, data: st.DataObject, shorthand: bool) -> None:
        m = data.draw(st.sampled_from(sorted(self.msgs.values(), key=lambda m: m.order)))
        reply = (
            self.line(client, f"ACK {m.id}") if shorthand else self.call(client, op="ACK", id=m.id)
        )
        if m.owner == client:
            assert reply == {"ok": True}
            del self.msgs[m.id]
        else:
            assert reply["error"] == "not_leased", reply

    @precondition(lambda self: self.msgs)
    @rule(client=st.sampled_from(CLIENTS), data=st.data())
    def ack_batch(self, client: int, data: st.DataObject) -> None:
        pool = sorted(self.msgs.values(), key=lambda m: m.order)
        chosen = data.draw(
            st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique_by=lambda m: m.id)
        )
        ids = [m.id for m in chosen] + ["unknown-id"]
        reply = self.call(client, op="ACK", ids=ids)
        mine = [m for m in chosen if m.owner == client]
        assert reply == {
            "ok": True,
            "acked": len(mine),
            "not_leased": [m.id for m in chosen if m.owner != client],
            "not_found": ["unknown-id"],
        }
        for m in mine:
            del self.msgs[m.id]

    @precondition(lambda self: any(m.owner is not None for m in self.msgs.values()))
    @rule(data=st.data())
    def nack(self, data: st.DataObject) -> None:
        leased = sorted(
            (m for m in self.msgs.values() if m.owner is not None), key=lambda m: m.order
        )
        m = data.draw(st.sampled_from(leased))
        assert m.owner is not None
        other = (m.owner + 1) % len(CLIENTS)
        assert self.call(other, op="NACK", id=m.id)["error"] == "not_leased"
        reply = self.call(m.owner, op="NACK", id=m.id)
        dead = self.release(m)
        assert reply == ({"ok": True, "dead": True} if dead else {"ok": True})

    @rule(client=st.sampled_from(CLIENTS))
    def reconnect(self, client: int) -> None:
        """Drop the connection (no QUIT): its leases come back at once, in order."""
        c = self.clients[client]
        c.writer.transport.abort()
        self.run(c.close())
        for m in sorted(self.leased_by(client), key=lambda m: m.order):
            self.release(m)
        self.clients[client] = self.run(LineClient.connect(self.server.port))
        # the close is applied before this PING is read: connections run on one loop,
        # but the abort may reach the server after the new connection's first request
        self.run(self._wait_released())

    async def _wait_released(self) -> None:
        expected = sum(m.owner is not None for m in self.msgs.values())
        c = self.clients[0]
        for _ in range(200):  # bounded: each round trip lets the loop see the close
            stats = await c.call(op="STATS")
            if stats["server"]["leased"] == expected:
                return
        raise AssertionError("leases of a closed connection were not released")

    @rule(client=st.sampled_from(CLIENTS), queue=any_queues)
    def purge(self, client: int, queue: str) -> None:
        victims = [m for m in self.msgs.values() if m.queue == queue and m.owner is None]
        assert self.call(client, op="PURGE", queue=queue) == {"ok": True, "purged": len(victims)}
        for m in victims:
            del self.msgs[m.id]

    @rule(client=st.sampled_from(CLIENTS), queue=queues)
    def redrive(self, client: int, queue: str) -> None:
        moved = sorted(
            (m for m in self.msgs.values() if m.queue == queue + ".dead" and m.owner is None),
            key=lambda m: m.order,
        )
        assert self.call(client, op="REDRIVE", queue=queue) == {"ok": True, "redriven": len(moved)}
        for m in moved:
            m.queue = queue
            m.attempts = 0
            m.order = self._order()

    @precondition(lambda self: self.msgs)
    @rule(client=st.sampled_from(CLIENTS), data=st.data())
    def info(self, client: int, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from(sorted(self.msgs.values(), key=lambda m: m.order)))
        got = self.call(client, op="INFO", id=m.id)["message"]
        state = (
            "leased" if m.owner is not None else ("dead" if m.queue.endswith(".dead") else "ready")
        )
        assert (got["queue"], got["state"], got["attempts"], got["priority"]) == (
            m.queue,
            state,
            m.attempts,
            m.priority,
        )
        assert got["body"] == m.body and got.get("key") == m.key

    @rule(client=st.sampled_from(CLIENTS), n=st.integers(1, 5), queue=queues)
    def pipeline(self, client: int, n: int, queue: str) -> None:
        """n PUTs and a PING in one write: replies come back in order, rids echoed."""
        data = b"".join(
            msgspec.json.encode({"op": "PUT", "queue": queue, "body": i, "rid": f"p{i}"}) + b"\n"
            for i in range(n)
        )
        c = self.clients[client]
        self.run(c.send_raw(data + b'{"op":"PING","rid":"end"}\n'))
        replies = [self.run(c.reply()) for _ in range(n + 1)]
        assert [r["rid"] for r in replies] == [f"p{i}" for i in range(n)] + ["end"]
        for i, r in enumerate(replies[:n]):
            self._add(r["id"], queue, i, None, 0, MAX_ATTEMPTS)

    # ----------------------------------------------------------- invariants

    @invariant()
    def stats_match(self) -> None:
        stats = self.call(0, op="STATS")
        assert stats["server"]["messages"] == len(self.msgs)
        assert stats["server"]["leased"] == sum(m.owner is not None for m in self.msgs.values())
        for q in ALL_QUEUES:
            row = stats["queues"].get(q, {"ready": 0, "leased": 0})
            here = [m for m in self.msgs.values() if m.queue == q]
            assert row["ready"] == sum(m.owner is None for m in here), q
            assert row["leased"] == sum(m.owner is not None for m in here), q


def _run(examples: int, steps: int) -> None:
    run_state_machine_as_test(
        TcpModel,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.timeout(300)  # a failure's shrinking restarts the server many times
def test_tcp_server_matches_the_model() -> None:
    _run(examples=int(os.environ.get("WONDERQ_MODEL_EXAMPLES", "40")), steps=30)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_tcp_server_matches_the_model_long_run() -> None:
    _run(examples=400, steps=60)
