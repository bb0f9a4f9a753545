"""The engine against a deliberately naive reference model, driven by Hypothesis.

The model (tests/engine/model.py) keeps every message in one dict and answers
every question by scanning it. After every step the engine must equal the model
exactly (messages, states, owners, attempts, headers, deadlines, deliveries,
stats, acked history, queue settings, paused flags and dedup ids) and a few
rules are checked again on their own, in case the model shares a mistake with
the engine.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from broker.config import Config
from broker.engine import AckedRecord, Engine, Message, NewMessage, State
from broker.errors import WonderQError
from tests.engine.helpers import tiny_pages
from tests.engine.model import COUNTERS, QUEUES, ROUNDING, SETTING_NAMES, UNKNOWN_ID, Model
from tests.engine.replay import ReplayJournal

__all__ = ["COUNTERS", "QUEUES", "UNKNOWN_ID", "Model"]  # the TCP model test takes them here

CONFIG = Config(
    max_attempts=2,
    max_body=5,
    max_queue_length=8,
    max_memory=13_000,  # three queues and a few messages (engine/footprint.py)
    acked_history=3,
    max_reply_bytes=4,
    dedup_window_s=2.0,
    max_dedup_ids=4,
)
OWNERS = (1, 2, 3)
KEYS = (None, "k1", "k1", "k2")
DEDUPS = (None, "d1", "d2", "d3", "d4", "d5")
HEADERS = (None, None, {"trace": "t1"})
#: values CONFIG may set (None resets); rates and instants are binary fractions, so the
#: engine and the model count tokens exactly alike
SETTING_VALUES: dict[str, tuple[Any, ...]] = {
    "lease_s": (None, 1.0, 5.0),
    "max_attempts": (None, 1, 3),
    "max_length": (None, 2, 5),
    "rate": (None, 0.5, 1.0, 2.0),
    "dedup_window_s": (None, 1.0, 3.0),
}


item_strategy = st.builds(
    lambda size, key, delay_s, priority, max_attempts: NewMessage(
        b"x" * size, key=key, delay_s=delay_s, priority=priority, max_attempts=max_attempts
    ),
    size=st.sampled_from([1, 1, 2, 3, 5, 6]),
    key=st.sampled_from(KEYS),
    delay_s=st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.5]),
    priority=st.sampled_from([-1, 0, 0, 0, 1]),
    max_attempts=st.sampled_from([None, None, 1, 3]),
)
owners = st.sampled_from(OWNERS)
leases = st.sampled_from([1.0, 2.0, 5.0, None])  # None: the queue's lease
waits = st.sampled_from([1.0, 3.0])


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.journal = ReplayJournal()
        self.engine = Engine(CONFIG, 1000, self.journal)
        self.model = Model(CONFIG)
        self.ids_ever: list[int] = [UNKNOWN_ID]
        self.next_token = 0
        self.events_seen: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ helpers
    def check_delivered(self, queue: str, msgs: list[Message]) -> None:
        """A direct GET reply: in delivery order, one per key, nothing better left behind."""
        places = [(m.priority, m.order) for m in msgs]
        assert places == sorted(places)
        keys = [m.key for m in msgs if m.key is not None]
        assert len(set(keys)) == len(keys), "two messages of one key in one reply"
        if msgs:
            worst = max(
                (self.model.msgs[m.seq].priority, self.model.msgs[m.seq].order) for m in msgs
            )
            left = self.model.deliverable(queue)
            assert all((m.priority, m.order) > worst for m in left), "a better message left"

    def pick_leased(self, data: st.DataObject) -> tuple[int, int] | None:
        leased = sorted(
            (m.owner, m.id) for m in self.model.msgs.values() if m.state == State.LEASED
        )
        if not leased:
            return None
        owner, seq = data.draw(st.sampled_from(leased))
        assert owner is not None
        return owner, seq

    # ------------------------------------------------------------------- rules
    # Hypothesis picks among rules evenly, so the everyday calls (put, get, ack,
    # nack, time) get several rules each and the rarer management calls share one.

    def do_put(self, queue: str, items: list[NewMessage]) -> None:
        expected = self.model.put_error(queue, items, self.engine.footprint())
        try:
            ids = self.engine.put(self.model.now, queue, items)
        except WonderQError as exc:
            assert type(exc) is expected
            return
        assert expected is None
        assert len(ids) == len(items) and not set(ids) & set(self.ids_ever)
        self.ids_ever.extend(ids)
        self.model.put(queue, items, ids)

    @rule(items=st.lists(item_strategy, min_size=1, max_size=3))
    def put(self, items: list[NewMessage]) -> None:
        self.do_put("a", items)

    @rule(queue=st.sampled_from(["a", "b", "a.dead"]), items=st.lists(item_strategy, max_size=3))
    def put_anywhere(self, queue: str, items: list[NewMessage]) -> None:
        self.do_put(queue, items)

    def do_get(
        self, queue: str, owner: int, max: int, lease_s: float | None, wait_s: float
    ) -> None:
        token = self.next_token
        self.next_token += 1
        now = self.model.now
        got = self.engine.get(
            now, queue, owner, max, lease_s, wait_s=wait_s, token=token, cancel_key=token % 2
        )
        if lease_s is None:
            lease_s = self.model.setting(queue, "lease_s")
        expected = self.model.get(queue, owner, max, lease_s, wait_s, token)
        if got is None or expected is None:
            assert got is None and expected is None
            return
        assert [m.seq for m in got] == expected
        self.check_delivered(queue, got)
        assert all(m.owner == owner and m.due_at == now + lease_s for m in got)

    @rule(owner=owners, max=st.integers(1, 3), lease_s=leases)
    def get(self, owner: int, max: int, lease_s: float | None) -> None:
        self.do_get("a", owner, max, lease_s, 0.0)

    @rule(owner=owners, max=st.integers(1, 3), lease_s=leases, wait_s=waits)
    def get_or_wait(self, owner: int, max: int, lease_s: float | None, wait_s: float) -> None:
        self.do_get("a", owner, max, lease_s, wait_s)

    @rule(
        queue=st.sampled_from(["b", "a.dead", "b.dead"]),
        owner=owners,
        max=st.integers(1, 3),
        lease_s=leases,
        wait_s=st.sampled_from([0.0, 1.0, 3.0]),
    )
    def get_elsewhere(
        self, queue: str, owner: int, max: int, lease_s: float | None, wait_s: float
    ) -> None:
        self.do_get(queue, owner, max, lease_s, wait_s)

    @rule(data=st.data())
    def ack_leased(self, data: st.DataObject) -> None:
        picked = self.pick_leased(data)
        if picked is not None:
            owner, seq = picked
            self.engine.ack(self.model.now, owner, seq)
            self.model.ack(owner, seq)

    @rule(data=st.data(), delay_s=st.sampled_from([0.0, 0.0, 0.5, 1.5]))
    def nack_leased(self, data: st.DataObject, delay_s: float) -> None:
        picked = self.pick_leased(data)
        if picked is not None:
            owner, seq = picked
            dead = self.engine.nack(self.model.now, owner, seq, delay_s)
            assert dead is self.model.nack(owner, seq, delay_s)

    @rule(data=st.data(), lease_s=leases)
    def touch_leased(self, data: st.DataObject, lease_s: float | None) -> None:
        picked = self.pick_leased(data)
        if picked is not None:
            owner, seq = picked
            self.engine.touch(self.model.now, owner, seq, lease_s)
            self.model.touch(owner, seq, lease_s)

    @rule(op=st.sampled_from(["ack", "nack", "touch"]), owner=owners, data=st.data())
    def call_with_any_id(self, op: str, owner: int, data: st.DataObject) -> None:
        """ACK, NACK or TOUCH with any owner and any id: mostly not_leased / not_found."""
        seq = data.draw(st.sampled_from(self.ids_ever))
        now, e, model = self.model.now, self.engine, self.model
        try:
            model.leased_by(owner, seq)
            expected: type[WonderQError] | None = None
        except WonderQError as exc:
            expected = type(exc)
        try:
            if op == "ack":
                e.ack(now, owner, seq)
            elif op == "nack":
                e.nack(now, owner, seq)
            else:
                e.touch(now, owner, seq, 1.0)
        except WonderQError as exc:
            assert type(exc) is expected
            return
        assert expected is None
        if op == "ack":
            model.ack(owner, seq)
        elif op == "nack":
            model.nack(owner, seq, 0.0)
        else:
            model.touch(owner, seq, 1.0)

    @rule(owner=owners, data=st.data())
    def ack_many(self, owner: int, data: st.DataObject) -> None:
        mine = sorted(m.id for m in self.model.msgs.values() if m.owner == owner)
        seqs = data.draw(st.lists(st.sampled_from(mine + self.ids_ever), max_size=4))
        result = self.engine.ack_many(self.model.now, owner, seqs)
        assert result == self.model.ack_many(owner, seqs)

    @rule(step=st.sampled_from([0.0, 0.5, 1.0, 1.5]))
    def advance(self, step: float) -> None:
        now = self.model.now + step
        self.engine.advance(now)
        self.model.advance(now)

    @rule(step=st.sampled_from([2.0, 3.0, 6.0]))
    def advance_far(self, step: float) -> None:
        self.advance(step)

    @rule(owner=owners)
    def disconnect(self, owner: int) -> None:
        assert self.engine.disconnect(self.model.now, owner) == self.model.disconnect(owner)

    @rule(queue=st.sampled_from(["a", "a", "b", "a.dead"]))
    def redrive(self, queue: str) -> None:
        assert self.engine.redrive(self.model.now, queue) == self.model.redrive(queue)

    @rule(
        op=st.sampled_from(["purge", "cancel_waits", "cancel_waits", "end_all_waits"]),
        queue=st.sampled_from(["a", "a", "b", "a.dead"]),
        owner=owners,
        parity=st.sampled_from([0, 1]),
    )
    def manage(self, op: str, queue: str, owner: int, parity: int) -> None:
        now, e, model = self.model.now, self.engine, self.model
        if op == "purge":
            assert e.purge(now, queue) == model.purge(queue)
        elif op == "cancel_waits":  # the waits were parked with their token's parity as key
            assert e.cancel_waits(owner, parity) == model.cancel_waits(owner, parity)
        else:
            e.end_all_waits()
            model.end_all_waits()

    @rule(
        queue=st.sampled_from(["a", "a", "b", "a.dead"]),
        items=st.lists(
            st.tuples(item_strategy, st.sampled_from(DEDUPS), st.sampled_from(HEADERS)),
            min_size=1,
            max_size=3,
        ),
    )
    def put_with_dedup_and_headers(
        self, queue: str, items: list[tuple[NewMessage, str | None, dict[str, str] | None]]
    ) -> None:
        model, now = self.model, self.model.now
        news = [i for i, _, _ in items]
        dedups = [d for _, d, _ in items]
        headers = [h for _, _, h in items]
        known, duplicates, fresh = model.sort_dedup(queue, dedups)
        footprint = self.engine.footprint()
        expected = (
            model.put_error(queue, [news[i] for i in fresh], footprint, [headers[i] for i in fresh])
            if fresh
            else None
        )
        try:
            ids, dups = self.engine.put_extended(now, queue, news, dedups, headers)
        except WonderQError as exc:
            assert type(exc) is expected
            return
        assert expected is None and dups == duplicates
        stored = [ids[i] for i in fresh]
        assert not set(stored) & set(self.ids_ever)
        self.ids_ever.extend(stored)
        for i in duplicates:
            want = known[i]
            if want is None:  # repeats an earlier item of this batch
                first = dedups.index(dedups[i])
                want = ids[first]
            assert ids[i] == want, (i, ids, known)
        model.put(queue, [news[i] for i in fresh], stored, [headers[i] for i in fresh])
        pairs = {dedups[i]: ids[i] for i in fresh if dedups[i] is not None}
        model.remember(queue, [(d, seq) for d, seq in pairs.items() if d is not None])

    @rule(
        queue=st.sampled_from(["a", "a", "b", "a.dead", "nope"]),
        name=st.sampled_from(SETTING_NAMES),
        data=st.data(),
        read=st.booleans(),
    )
    def configure(self, queue: str, name: str, data: st.DataObject, read: bool) -> None:
        changes = {} if read else {name: data.draw(st.sampled_from(SETTING_VALUES[name]))}
        self.do_configure(queue, changes)

    @rule(rate=st.sampled_from(SETTING_VALUES["rate"][1:] * 2 + (None,)))
    def limit_rate(self, rate: float | None) -> None:
        """Rate limits on the busiest queue, often: waiters then wait on tokens."""
        self.do_configure("a", {"rate": rate})

    @rule(owner=owners, rate=st.sampled_from(SETTING_VALUES["rate"][1:]), wait_s=waits)
    def rate_limited_consumers(self, owner: int, rate: float, wait_s: float) -> None:
        """More messages than tokens, and consumers waiting on the next one."""
        self.do_configure("a", {"rate": rate})
        self.do_put("a", [NewMessage(b"x")] * 3)
        self.do_get("a", owner, 3, None, 0.0)
        self.do_get("a", owner, 1, None, wait_s)

    def do_configure(self, queue: str, changes: dict[str, Any]) -> None:
        self.outcome(
            lambda: tuple(self.engine.configure(self.model.now, queue, changes)),
            lambda: self.model.configure(queue, changes),
        )

    @rule(
        op=st.sampled_from(["pause", "resume", "resume"]),
        queue=st.sampled_from(["a", "a", "b", "a.dead", "nope"]),
    )
    def pause_or_resume(self, op: str, queue: str) -> None:
        self.outcome(
            lambda: getattr(self.engine, op)(self.model.now, queue),
            lambda: getattr(self.model, op)(queue),
        )

    @rule(queue=st.sampled_from(["a", "b", "a.dead", "nope"]), dead=st.booleans())
    def delete(self, queue: str, dead: bool) -> None:
        self.outcome(
            lambda: self.engine.delete(self.model.now, queue, dead),
            lambda: self.model.delete_queue(queue, dead),
        )
        for name, event in list(self.events_seen):  # a deleted queue's counters start again
            if name not in self.model.queues:
                del self.events_seen[(name, event)]

    @rule(
        op=st.sampled_from(["remove", "redrive_ids"]),
        queue=st.sampled_from(["a", "b", "a.dead", "nope"]),
        data=st.data(),
    )
    def pick(self, op: str, queue: str, data: st.DataObject) -> None:
        """REMOVE or REDRIVE with ids, the ids drawn from every id ever handed out."""
        seqs = data.draw(st.lists(st.sampled_from(self.ids_ever), min_size=1, max_size=4))
        self.outcome(
            lambda: getattr(self.engine, op)(self.model.now, queue, seqs),
            lambda: getattr(self.model, op)(queue, seqs),
        )

    def outcome(self, engine_call: Any, model_call: Any) -> None:
        """Both calls return the same, or raise the same error."""
        try:
            expected: Any = model_call()
        except WonderQError as exc:
            expected = type(exc)
        try:
            got: Any = engine_call()
        except WonderQError as exc:
            got = type(exc)
        assert got == expected

    # -------------------------------------------------------------- invariants
    @invariant()
    def deliveries_match(self) -> None:
        got = {}
        for d in self.engine.take_deliveries():
            assert d.token not in got, "a wait completed twice"
            got[d.token] = (d.owner, [m.seq for m in d.messages])
        assert got == self.model.deliveries
        self.model.deliveries = {}

    @invariant()
    def messages_match(self) -> None:
        e, model = self.engine, self.model
        assert e.totals()["messages"] == len(model.msgs)
        for m in model.msgs.values():
            found = e.lookup(m.id)
            assert isinstance(found, Message), m
            got = (
                found.queue.name,
                found.state,
                found.owner,
                found.attempts,
                found.key,
                found.priority,
                found.max_attempts,
                len(found.body),
                found.headers,
            )
            assert got == (
                m.queue,
                m.state,
                m.owner,
                m.attempts,
                m.key,
                m.priority,
                m.max_attempts,
                m.size,
                m.headers,
            ), m
            if m.state != State.READY:
                assert found.due_at == m.due, m
        remembered = model.acked
        for seq in self.ids_ever:
            if seq in model.msgs:
                continue
            found = e.lookup(seq)
            if seq in remembered:
                assert isinstance(found, AckedRecord) and found.queue == remembered[seq]
                assert found.attempts == model.acked_attempts[seq]
            else:
                assert found is None, seq

    @invariant()
    def stats_match(self) -> None:
        e, model = self.engine, self.model
        for name in QUEUES:
            q = e.find_queue(name)
            mine = model.in_queue(name)
            expected = {
                "ready": sum(m.state == State.READY for m in mine),
                "delayed": sum(m.state == State.DELAYED for m in mine),
                "leased": sum(m.state == State.LEASED for m in mine),
                "dead": len(model.in_queue(name + ".dead")),
                "waiting_consumers": sum(w.queue == name for w in model.waiters),
                "bytes": sum(m.size for m in mine),
                **model.counters[name],
            }
            assert (q is None) == (name not in model.queues), name
            assert e.waiting_on(name) == expected["waiting_consumers"], name
            if q is None:  # only "dead" and waiters (its lobby) for a queue never stored in
                assert not any(
                    v for k, v in expected.items() if k not in ("dead", "waiting_consumers")
                ), name
                continue
            expected["paused"] = model.queues[name].paused
            assert tuple(e.settings_of(name)) == model.effective(name), name
            stats = e.queue_stats(q, model.now)
            assert {k: stats[k] for k in expected} == expected, name
            ready_at = [m.put_at for m in mine if m.state == State.READY]
            oldest = round(model.now - min(ready_at), 6) if ready_at else None
            assert stats["oldest_ready_age"] == oldest, name
        assert {(q, d): seq for q, d, seq, _, _ in e.dedup_ids(model.now)} == model.live_dedup()
        assert e.dedup_totals()["dedup_evicted"] == model.evicted
        totals = e.totals()
        assert totals["leased"] == sum(m.state == State.LEASED for m in model.msgs.values())
        assert totals["bytes"] == model.bytes()
        assert e.next_deadline() == model.next_deadline()

    @invariant()
    def rules_hold(self) -> None:
        """The rules again, checked on the engine's own records, not through the model."""
        e, now = self.engine, self.model.now
        heap = e._deadlines.entries
        held = [e.lookup(seq) for seq in self.model.msgs]
        msgs = [m for m in held if isinstance(m, Message)]
        leased = [m for m in msgs if m.state == State.LEASED]
        # one owner per lease, and the engine's owner index agrees
        owned = [
            (owner, m.seq)
            for owner, by_queue in e._owned.items()
            for q, ms in by_queue.items()
            for m in ms
            if m.queue is q and q.holders[owner] is ms  # each set is its queue's too
        ]
        assert sorted(owned, key=repr) == sorted(((m.owner, m.seq) for m in leased), key=repr)
        # at most one leased message per (queue, key), and it heads its key
        for m in leased:
            assert m.attempts >= 1
            if m.key is not None:
                earlier = [
                    o for o in msgs if o.queue is m.queue and o.key == m.key and o.order < m.order
                ]
                assert not earlier, (m, earlier)
        # a released message that reached max_attempts is never back in a live queue
        for m in msgs:
            if not m.queue.is_dead and m.state != State.LEASED:
                assert m.attempts < m.max_attempts, m
        # the names' index holds exactly the table's names, in order
        assert e.queue_names() == sorted(e._queues)
        # no waiter beside a deliverable message, unless the queue is paused or waits on
        # its rate limit's next token, which the deadline heap then holds
        for name in e.queue_names():
            q = e.queue(name)
            if not (q.n_waiting and q.has_deliverable()) or q.paused:
                continue
            bucket = q.bucket
            assert bucket is not None, name
            tokens = min(bucket.capacity, bucket.tokens + (now - bucket.at) * bucket.rate)
            assert tokens + ROUNDING < 1, name
            assert any(item is bucket and at == bucket.due_at for at, _, item in heap), name

    @invariant()
    def views_match(self) -> None:
        """PEEK, per-owner counts and the log events agree with the model."""
        e, model = self.engine, self.model
        for name in QUEUES:
            mine = model.in_queue(name)
            by_place = sorted(mine, key=lambda m: (m.priority, m.order))
            assert [m.seq for m in e.peek(name, None, 100)] == [m.id for m in by_place]
            assert [m.seq for m in e.peek(name, None, 2)] == [m.id for m in by_place[:2]]
            ready = [m.id for m in by_place if m.state == State.READY]
            assert [m.seq for m in e.peek(name, State.READY, 100)] == ready
            for state in (State.DELAYED, State.LEASED):
                timed = sorted(
                    (m for m in mine if m.state == state), key=lambda m: (m.due, m.order)
                )
                assert [m.seq for m in e.peek(name, state, 100)] == [m.id for m in timed]
        for owner in OWNERS:
            leased = [
                m for m in model.msgs.values() if m.state == State.LEASED and m.owner == owner
            ]
            assert e.leases_of(owner) == len(leased)
            assert e.waits_of(owner) == sum(w.owner == owner for w in model.waiters)
        expected = {}
        for name, counters in model.counters.items():
            for event in ("expired", "dead_lettered"):
                n = counters[event] - self.events_seen.get((name, event), 0)
                if n:
                    expected[(name, event)] = n
                    self.events_seen[(name, event)] = counters[event]
        assert e.take_events() == expected

    @invariant()
    def journal_replays_to_the_same_state(self) -> None:
        self.journal.assert_matches(self.engine, self.model.now)


PHASES = [p for p in Phase if p != Phase.explain]  # explaining a long stateful run is slow
EngineMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("WONDERQ_MODEL_EXAMPLES", "200")),
    stateful_step_count=50,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMatchesModel = EngineMachine.TestCase


def test_engine_matches_model_with_tiny_pages() -> None:
    """The same machine with the engine's paged containers paging past 2 entries (the id
    index, key chains, delayed sets: paged.py), so its runs go in and out of pages."""
    with tiny_pages():
        run_state_machine_as_test(
            EngineMachine,
            settings=settings(
                max_examples=int(os.environ.get("WONDERQ_MODEL_EXAMPLES", "200")) // 2,
                stateful_step_count=50,
                deadline=None,
                phases=PHASES,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_engine_matches_model_long_run(request: pytest.FixtureRequest) -> None:
    if "slow" not in str(request.config.getoption("markexpr")):
        pytest.skip("long run: select it with -m slow")
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(
            max_examples=5000,
            stateful_step_count=120,
            deadline=None,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
