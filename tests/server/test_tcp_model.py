"""The real TCP server against the engine's reference model, driven by Hypothesis.

tests/engine/test_model.py drives the pure engine against a deliberately naive
``Model``. This machine drives the same ``Model`` through a real server over
TCP, so what sits between a client and the engine is covered too: framing,
the codec (JSON and shorthand), batches and pipelining, the backend's handlers
and reply formatting, and connection close releasing leases. Leases are long
(they never run out during a run), dedup windows too, and there are no delays,
waits or rate limits, so the model's clock stays at 0 while the server's runs.
The queue operations of issue 13 go through it as well: dedup ids and headers
on PUT, CONFIG, PAUSE and RESUME, REMOVE, REDRIVE with ids, DELETE.

Each client connection is one model owner. Message bodies are small JSON values;
the model sees each body as the exact bytes the server stores (its encoding).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec
import pytest
import uvloop
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from broker.config import Config
from broker.engine import NewMessage, State, format_id, parse_id
from broker.errors import WonderQError
from broker.server import Server
from tests.conftest import one_backend
from tests.engine.model import COUNTERS, QUEUES, UNKNOWN_ID, Model
from tests.support import LineClient

T = TypeVar("T")

LEASE_S = 600.0  # never runs out during a run
CONFIG = Config(
    host="127.0.0.1",
    port=0,
    lease_s=LEASE_S,
    max_attempts=2,
    max_body=12,
    max_queue_length=8,
    acked_history=3,
    max_reply_bytes=24,
    max_dedup_ids=4,
)
OWNERS = (1, 2, 3)

bodies = st.one_of(
    st.integers(-1000, 1000),
    st.text('abé"\\\n', max_size=6),
    st.lists(st.integers(0, 9), max_size=3),
    st.sampled_from([None, True, {"x": 1}, "longer than twelve bytes"]),
)
items = st.tuples(
    bodies,
    st.sampled_from([None, None, "k1", "k2"]),  # key
    st.sampled_from([0, 0, 0, -1, 1]),  # priority
    st.sampled_from([None, None, 1, 3]),  # max_attempts
)
extras = st.tuples(
    st.sampled_from([None, "d1", "d2", "d3", "d4", "d5"]),  # dedup
    st.sampled_from([None, None, {"traceparent": "00-ab-cd-01"}, {}]),  # headers ({}: none)
)
#: settings CONFIG may change here (no time-dependent one: the model's clock stays at 0)
CONFIG_VALUES: dict[str, tuple[Any, ...]] = {
    "max_attempts": (None, 1, 3),
    "max_length": (None, 2, 5),
}
owners = st.sampled_from(OWNERS)
put_queues = st.sampled_from(["a", "a", "a", "b", "a.dead"])
get_queues = st.sampled_from(["a", "a", "b", "a.dead", "a.dead", "b.dead"])


def _new(body: Any, key: str | None, priority: int, max_attempts: int | None) -> NewMessage:
    return NewMessage(msgspec.json.encode(body), key, 0.0, priority, max_attempts)


def _fields(key: str | None, priority: int, max_attempts: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if key is not None:
        out["key"] = key
    if priority:
        out["priority"] = priority
    if max_attempts is not None:
        out["max_attempts"] = max_attempts
    return out


class TcpMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        self.server = Server(CONFIG)
        self.run(self.server.start())
        self.clients = {o: self.run(LineClient.connect(self.server.port)) for o in OWNERS}
        self.model = Model(CONFIG)
        self.bodies: dict[int, Any] = {}
        self.ids_ever: list[int] = [UNKNOWN_ID]
        self.rid = 0

    # ------------------------------------------------------------- plumbing

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(asyncio.wait_for(coro, 10))

    def call(self, owner: int, **request: Any) -> dict[str, Any]:
        self.rid += 1
        reply = self.run(self.clients[owner].call(rid=self.rid, **request))
        assert reply.pop("rid") == self.rid, reply
        return reply

    def line(self, owner: int, text: str) -> dict[str, Any]:
        return self.run(self.clients[owner].line(text))

    def teardown(self) -> None:
        try:
            for c in self.clients.values():
                self.run(c.close())
            self.run(self.server.close())
        finally:
            self.runner.close()

    def expect_error(self, reply: dict[str, Any], expected: type[WonderQError] | None) -> bool:
        """Check a reply against the model's error (None: success); True if it failed."""
        if expected is None:
            assert reply["ok"] is True, reply
            return False
        assert reply["ok"] is False and reply["error"] == str(expected.code), (reply, expected)
        return True

    def stored(
        self,
        queue: str,
        new: list[tuple[NewMessage, Any]],
        ids: list[str],
        headers: list[dict[str, str] | None] | None = None,
    ) -> None:
        seqs = [parse_id(i) for i in ids]
        assert all(s is not None for s in seqs)
        self.model.put(queue, [n for n, _ in new], seqs, headers)  # type: ignore[arg-type]
        for seq, (_, body) in zip(seqs, new, strict=True):
            assert seq not in self.ids_ever
            self.ids_ever.append(seq)  # type: ignore[arg-type]
            self.bodies[seq] = body  # type: ignore[index]

    # ---------------------------------------------------------------- rules

    @rule(owner=owners, queue=put_queues, batch=st.lists(items, min_size=1, max_size=3))
    def put(
        self, owner: int, queue: str, batch: list[tuple[Any, str | None, int, int | None]]
    ) -> None:
        new = [(_new(*item), item[0]) for item in batch]
        expected = self.model.put_error(queue, [n for n, _ in new])
        if len(batch) == 1:
            body, key, priority, max_attempts = batch[0]
            request = {"body": body, **_fields(key, priority, max_attempts)}
            reply = self.call(owner, op="PUT", queue=queue, **request)
            if not self.expect_error(reply, expected):
                self.stored(queue, new, [reply["id"]])
            return
        messages = [{"body": b, **_fields(k, p, m)} for b, k, p, m in batch]
        reply = self.call(owner, op="PUT", queue=queue, messages=messages)
        if not self.expect_error(reply, expected):
            self.stored(queue, new, reply["ids"])

    @rule(
        owner=owners,
        queue=put_queues,
        batch=st.lists(st.tuples(items, extras), min_size=1, max_size=3),
        single=st.booleans(),
    )
    def put_with_dedup_and_headers(
        self,
        owner: int,
        queue: str,
        batch: list[tuple[tuple[Any, str | None, int, int | None], tuple[Any, Any]]],
        single: bool,
    ) -> None:
        model = self.model
        batch = batch[:1] if single else batch
        news = [(_new(*item), item[0]) for item, _ in batch]
        dedups = [d for _, (d, _) in batch]
        headers = [h or None for _, (_, h) in batch]
        known, duplicates, fresh = model.sort_dedup(queue, dedups)
        fresh_news = [news[i][0] for i in fresh]
        expected = model.put_error(queue, fresh_news) if fresh else None
        wire = [
            {"body": item[0], **_fields(*item[1:])}
            | ({"dedup": d} if d is not None else {})
            | ({"headers": h} if h is not None else {})
            for item, (d, h) in batch
        ]
        if single:
            reply = self.call(owner, op="PUT", queue=queue, **wire[0])
            got = [reply["id"]] if reply["ok"] else []
            dups = [0] if reply.get("duplicate") else []
            assert "duplicate" not in reply or reply["duplicate"] is True
        else:
            reply = self.call(owner, op="PUT", queue=queue, messages=wire)
            got, dups = reply.get("ids", []), reply.get("duplicates", [])
        if self.expect_error(reply, expected):
            return
        assert dups == duplicates
        for i in duplicates:
            want = known[i] if known[i] is not None else parse_id(got[dedups.index(dedups[i])])
            assert parse_id(got[i]) == want, (got, known)
        stored = [got[i] for i in fresh]
        self.stored(queue, [news[i] for i in fresh], stored, [headers[i] for i in fresh])
        pairs = {dedups[i]: parse_id(got[i]) for i in fresh if dedups[i] is not None}
        model.remember(queue, [(d, s) for d, s in pairs.items() if d is not None and s])

    @rule(owner=owners, queue=put_queues, word=st.text("xyz", min_size=1, max_size=5))
    def put_shorthand(self, owner: int, queue: str, word: str) -> None:
        text = f"w{word} {word}"  # not JSON, so a string body
        new = [(_new(text, None, 0, None), text)]
        reply = self.line(owner, f"PUT {queue} {text}")
        if not self.expect_error(reply, self.model.put_error(queue, [new[0][0]])):
            self.stored(queue, new, [reply["id"]])

    @rule(owner=owners, n=st.integers(1, 4), queue=st.sampled_from(["a", "b"]))
    def pipeline(self, owner: int, n: int, queue: str) -> None:
        """n PUTs and a PING in one write: replies in order, rids echoed, errors in place."""
        data = b"".join(
            msgspec.json.encode({"op": "PUT", "queue": queue, "body": i, "rid": f"p{i}"}) + b"\n"
            for i in range(n)
        )
        c = self.clients[owner]
        self.run(c.send_raw(data + b'{"op":"PING","rid":"end"}\n'))
        replies = [self.run(c.reply()) for _ in range(n + 1)]
        assert [r["rid"] for r in replies] == [f"p{i}" for i in range(n)] + ["end"]
        for i, reply in enumerate(replies[:n]):
            new = [(_new(i, None, 0, None), i)]
            if not self.expect_error(reply, self.model.put_error(queue, [new[0][0]])):
                self.stored(queue, new, [reply["id"]])

    @rule(owner=owners, queue=get_queues, max=st.integers(1, 4), shorthand=st.booleans())
    def get(self, owner: int, queue: str, max: int, shorthand: bool) -> None:
        expected = self.model.get(queue, owner, max, LEASE_S, 0.0, token=-1)
        assert expected is not None
        if shorthand:
            reply = self.line(owner, f"GET {queue} {max} {LEASE_S:g}")
        else:
            reply = self.call(owner, op="GET", queue=queue, max=max, lease=LEASE_S)
        assert reply["ok"] is True, reply
        got = reply["messages"]
        assert [g["id"] for g in got] == [format_id(s) for s in expected]
        for g, seq in zip(got, expected, strict=True):
            m = self.model.msgs[seq]
            want = {"id": format_id(seq), "queue": queue, "body": self.bodies[seq]}
            want |= {"attempts": m.attempts} | ({"key": m.key} if m.key is not None else {})
            want |= {"headers": m.headers} if m.headers is not None else {}
            assert g == want

    def _leased_or_error(self, owner: int, seq: int) -> type[WonderQError] | None:
        try:
            self.model.leased_by(owner, seq)
        except WonderQError as exc:
            return type(exc)
        return None

    @rule(owner=owners, data=st.data(), shorthand=st.booleans())
    def ack(self, owner: int, data: st.DataObject, shorthand: bool) -> None:
        seq = data.draw(st.sampled_from(self.ids_ever))
        expected = self._leased_or_error(owner, seq)
        mid = format_id(seq)
        reply = self.line(owner, f"ACK {mid}") if shorthand else self.call(owner, op="ACK", id=mid)
        if not self.expect_error(reply, expected):
            assert reply == {"ok": True}
            self.model.ack(owner, seq)

    @precondition(lambda self: any(m.state == State.LEASED for m in self.model.msgs.values()))
    @rule(data=st.data())
    def ack_leased(self, data: st.DataObject) -> None:
        leased = sorted((m.owner, m.id) for m in self.model.msgs.values() if m.owner is not None)
        owner, seq = data.draw(st.sampled_from(leased))
        assert self.call(owner, op="ACK", id=format_id(seq)) == {"ok": True}
        self.model.ack(owner, seq)

    @precondition(lambda self: any(m.state == State.LEASED for m in self.model.msgs.values()))
    @rule(data=st.data())
    def nack_leased(self, data: st.DataObject) -> None:
        leased = sorted((m.owner, m.id) for m in self.model.msgs.values() if m.owner is not None)
        owner, seq = data.draw(st.sampled_from(leased))
        reply = self.call(owner, op="NACK", id=format_id(seq))
        dead = self.model.nack(owner, seq, 0.0)
        assert reply == ({"ok": True, "dead": True} if dead else {"ok": True})

    @rule(owner=owners, data=st.data())
    def ack_many(self, owner: int, data: st.DataObject) -> None:
        seqs = data.draw(
            st.lists(st.sampled_from(self.ids_ever), min_size=1, max_size=4, unique=True)
        )
        reply = self.call(owner, op="ACK", ids=[format_id(s) for s in seqs] + ["not-an-id"])
        result = self.model.ack_many(owner, seqs)
        assert reply == {
            "ok": True,
            "acked": result.acked,
            "not_leased": [format_id(s) for s in result.not_leased],
            "not_found": [format_id(s) for s in result.not_found] + ["not-an-id"],
        }

    @rule(owner=owners, data=st.data(), op=st.sampled_from(["NACK", "TOUCH"]))
    def nack_or_touch(self, owner: int, data: st.DataObject, op: str) -> None:
        leased = sorted(m.id for m in self.model.msgs.values() if m.owner == owner)
        seq = data.draw(st.sampled_from(leased or self.ids_ever))
        expected = self._leased_or_error(owner, seq)
        reply = self.call(owner, op=op, id=format_id(seq))
        if self.expect_error(reply, expected):
            return
        if op == "TOUCH":
            assert reply == {"ok": True}
            self.model.touch(owner, seq, LEASE_S)
        else:
            dead = self.model.nack(owner, seq, 0.0)
            assert reply == ({"ok": True, "dead": True} if dead else {"ok": True})

    @rule(owner=owners)
    def reconnect(self, owner: int) -> None:
        """Drop the connection (no QUIT): its leases come back at once, in order."""
        c = self.clients[owner]
        c.writer.transport.abort()
        self.run(c.close())
        self.model.disconnect(owner)
        self.clients[owner] = self.run(LineClient.connect(self.server.port))
        self.run(self._until_released())

    async def _until_released(self) -> None:
        """The abort reaches the server on its own loop turn: wait for it (bounded)."""
        expected = sum(m.state == State.LEASED for m in self.model.msgs.values())
        for _ in range(200):  # each round trip lets the loop handle the close
            stats = await self.clients[OWNERS[0]].call(op="STATS")
            if stats["server"]["leased"] == expected:
                return
        raise AssertionError("the leases of a closed connection were not released")

    @rule(owner=owners, queue=st.sampled_from(QUEUES))
    def purge(self, owner: int, queue: str) -> None:
        expected = self.model.purge(queue)
        assert self.call(owner, op="PURGE", queue=queue) == {"ok": True, "purged": expected}

    @rule(owner=owners, queue=st.sampled_from(["a", "b"]))
    def redrive(self, owner: int, queue: str) -> None:
        expected = self.model.redrive(queue)
        assert self.call(owner, op="REDRIVE", queue=queue) == {"ok": True, "redriven": expected}

    @rule(owner=owners, data=st.data())
    def info(self, owner: int, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(self.ids_ever))
        reply = self.call(owner, op="INFO", id=format_id(seq))
        m = self.model.msgs.get(seq)
        acked_in = [self.model.acked[seq]] if seq in self.model.acked else []
        if m is None and not acked_in:
            assert reply["error"] == "not_found", reply
            return
        got = reply["message"]
        if m is None:
            attempts = self.model.acked_attempts[seq]
            assert got == {
                "id": format_id(seq),
                "queue": acked_in[0],
                "state": "acked",
                "attempts": attempts,
            }
            return
        state = m.state.name.lower()
        if m.state == State.READY and m.queue.endswith(".dead"):
            state = "dead"
        assert (got["queue"], got["state"], got["attempts"], got["priority"]) == (
            m.queue,
            state,
            m.attempts,
            m.priority,
        )
        assert got["body"] == self.bodies[seq] and got.get("key") == m.key
        assert got.get("headers") == m.headers

    def same(self, reply: dict[str, Any], model_call: Any) -> Any:
        """The model's result, after checking the reply failed as the model did (or not)."""
        try:
            result = model_call()
        except WonderQError as exc:
            self.expect_error(reply, type(exc))
            return None
        assert reply["ok"] is True, reply
        return result

    @rule(
        owner=owners,
        queue=st.sampled_from(["a", "b", "a.dead", "nope"]),
        name=st.sampled_from(sorted(CONFIG_VALUES)),
        data=st.data(),
        read=st.booleans(),
    )
    def config(self, owner: int, queue: str, name: str, data: st.DataObject, read: bool) -> None:
        value = data.draw(st.sampled_from(CONFIG_VALUES[name]))
        changes = {} if read else {name: value}
        reply = self.call(owner, op="CONFIG", queue=queue, **changes)
        expected = self.same(reply, lambda: self.model.configure(queue, changes))
        if expected is not None:
            lease, attempts, length, rate, window = expected
            assert reply["settings"] == {
                "lease": lease,
                "max_attempts": attempts,
                "max_length": length,
                "rate": rate,
                "dedup_window": window,
            }

    @rule(
        owner=owners,
        op=st.sampled_from(["PAUSE", "RESUME"]),
        queue=st.sampled_from(["a", "b", "nope"]),
        shorthand=st.booleans(),
    )
    def pause_or_resume(self, owner: int, op: str, queue: str, shorthand: bool) -> None:
        if shorthand:
            reply = self.line(owner, f"{op} {queue}")
        else:
            reply = self.call(owner, op=op, queue=queue)
        try:
            getattr(self.model, op.lower())(queue)
        except WonderQError as exc:
            self.expect_error(reply, type(exc))
            return
        assert reply == {"ok": True}

    @rule(owner=owners, queue=st.sampled_from(["a", "b", "a.dead", "nope"]), dead=st.booleans())
    def delete(self, owner: int, queue: str, dead: bool) -> None:
        reply = self.call(owner, op="DELETE", queue=queue, dead=dead)
        deleted = self.same(reply, lambda: self.model.delete_queue(queue, dead))
        if deleted is not None:
            assert reply == {"ok": True, "deleted": deleted}

    @rule(
        owner=owners,
        op=st.sampled_from(["REMOVE", "REDRIVE"]),
        queue=st.sampled_from(["a", "b", "a.dead", "nope"]),
        data=st.data(),
    )
    def pick(self, owner: int, op: str, queue: str, data: st.DataObject) -> None:
        seqs = data.draw(st.lists(st.sampled_from(self.ids_ever), min_size=1, max_size=4))
        reply = self.call(op=op, owner=owner, queue=queue, ids=[format_id(s) for s in seqs])
        method = self.model.remove if op == "REMOVE" else self.model.redrive_ids
        picked = self.same(reply, lambda: method(queue, seqs))
        if picked is not None:
            count = "removed" if op == "REMOVE" else "redriven"
            assert reply == {
                "ok": True,
                count: picked.done,
                "leased": [format_id(s) for s in picked.leased],
                "not_found": [format_id(s) for s in picked.not_found],
            }

    # ----------------------------------------------------------- invariants

    @invariant()
    def stats_match(self) -> None:
        stats = self.call(OWNERS[0], op="STATS")
        model = self.model
        server = stats["server"]
        assert server["messages"] == len(model.msgs)
        assert server["bytes"] == model.bytes()
        assert server["leased"] == sum(m.state == State.LEASED for m in model.msgs.values())
        for name in QUEUES:
            mine = model.in_queue(name)
            expected = {
                "ready": sum(m.state == State.READY for m in mine),
                "leased": sum(m.state == State.LEASED for m in mine),
                "bytes": sum(m.size for m in mine),
                **{k: model.counters[name][k] for k in COUNTERS},
            }
            row = stats["queues"].get(name)
            assert (row is None) == (name not in model.queues), name
            if row is None:
                assert not any(expected.values()), name
                continue
            assert {k: row[k] for k in expected} == expected, name
            q = model.queues[name]
            settings = {k: v for k, v in q.settings.items() if v is not None}
            assert (row["paused"], row["settings"]) == (q.paused, settings), name
        assert server["dedup_evicted"] == model.evicted


def _run(examples: int, steps: int) -> None:
    run_state_machine_as_test(
        TcpMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            phases=[p for p in Phase if p != Phase.explain],  # explaining a run is slow
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.load
@pytest.mark.timeout(600)  # shrinking a failure restarts the server many times
@one_backend  # builds its own in-memory Server
def test_tcp_server_matches_the_model() -> None:
    _run(examples=int(os.environ.get("WONDERQ_TCP_MODEL_EXAMPLES", "40")), steps=30)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tcp_server_matches_the_model_long_run() -> None:
    _run(examples=500, steps=60)
