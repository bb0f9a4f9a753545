"""The engine against a deliberately naive reference model, driven by Hypothesis.

The model keeps every message in one dict and answers every question by scanning
it: a message is deliverable when it is ready and no earlier message of its key
(any state) is left in its queue, and deliverable messages go out by (priority,
order). Time is the model's ``now``; deadlines fire one instant at a time: at an
instant, leases and delays due then are handled first (in queue order), then
waiters are served, then the waits due then end empty.

After every step the engine must equal the model exactly (messages, states,
owners, attempts, deadlines, deliveries, stats, acked history) and a few rules
are checked again on their own, in case the model shares a mistake with the
engine.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

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
from broker.engine import AckedRecord, AckResult, Engine, Message, NewMessage, State
from broker.errors import MemoryLimit, NotFound, NotLeased, QueueFull, TooLarge, WonderQError
from tests.engine.replay import ReplayJournal

CONFIG = Config(
    max_attempts=2,
    max_body=5,
    max_queue_length=8,
    max_memory=90,
    acked_history=3,
    max_reply_bytes=4,
)
QUEUES = ("a", "b", "a.dead", "b.dead")
OWNERS = (1, 2, 3)
KEYS = (None, "k1", "k1", "k2")
COUNTERS = (
    "put",
    "acked",
    "nacked",
    "expired",
    "released_on_disconnect",
    "dead_lettered",
    "redriven",
    "purged",
)
UNKNOWN_ID = 7  # below the engine's first id


@dataclass
class M:
    id: int
    queue: str
    size: int
    key: str | None
    priority: int
    max_attempts: int
    order: int
    put_at: float
    state: State = State.READY
    owner: int | None = None
    due: float = 0.0
    attempts: int = 0


@dataclass
class W:
    token: int
    owner: int
    queue: str
    max: int
    lease_s: float
    due: float


@dataclass
class Model:
    config: Config
    now: float = 0.0
    msgs: dict[int, M] = field(default_factory=dict)
    waiters: list[W] = field(default_factory=list)  # arrival order
    acked: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    counters: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    )
    deliveries: dict[int, tuple[int, list[int]]] = field(default_factory=dict)
    last_order: int = 0

    # --- questions, all answered by scanning everything
    def new_order(self) -> int:
        self.last_order += 1
        return self.last_order

    def in_queue(self, queue: str) -> list[M]:
        return [m for m in self.msgs.values() if m.queue == queue]

    def blocked(self, m: M) -> bool:
        return m.key is not None and any(
            o.queue == m.queue and o.key == m.key and o.order < m.order for o in self.msgs.values()
        )

    def deliverable(self, queue: str) -> list[M]:
        ready = [m for m in self.in_queue(queue) if m.state == State.READY and not self.blocked(m)]
        return sorted(ready, key=lambda m: (m.priority, m.order))

    def dues(self) -> list[float]:
        timed = [m.due for m in self.msgs.values() if m.state != State.READY]
        return timed + [w.due for w in self.waiters]

    def next_deadline(self) -> float | None:
        return min(self.dues(), default=None)

    def bytes(self) -> int:
        return sum(m.size for m in self.msgs.values())

    # --- changes
    def lease(self, queue: str, owner: int, max: int, lease_s: float) -> list[int]:
        out: list[int] = []
        total = 0
        for m in self.deliverable(queue):
            if len(out) == max or total >= self.config.max_reply_bytes:
                break
            m.state, m.owner, m.due = State.LEASED, owner, self.now + lease_s
            m.attempts += 1
            out.append(m.id)
            total += m.size
        return out

    def serve_waiters(self) -> None:
        for w in list(self.waiters):
            if self.deliverable(w.queue):
                self.waiters.remove(w)
                self.deliveries[w.token] = (w.owner, self.lease(w.queue, w.owner, w.max, w.lease_s))

    def release(self, m: M, reason: str, delay_s: float) -> bool:
        self.counters[m.queue][reason] += 1
        m.owner = None
        if m.attempts >= m.max_attempts and not m.queue.endswith(".dead"):
            self.counters[m.queue]["dead_lettered"] += 1
            m.queue += ".dead"
            m.state = State.READY
            m.order = self.new_order()
            return True
        if delay_s > 0:
            m.state, m.due = State.DELAYED, self.now + delay_s
        else:
            m.state = State.READY
        return False

    def leased_by(self, owner: int, seq: int) -> M:
        m = self.msgs.get(seq)
        if m is None:
            if any(seq in history for history in self.acked.values()):
                raise NotLeased("acked already")
            raise NotFound("")
        if m.state != State.LEASED or m.owner != owner:
            raise NotLeased("")
        return m

    def delete(self, m: M) -> None:
        del self.msgs[m.id]
        self.counters[m.queue]["acked"] += 1
        history = self.acked[m.queue]
        history.append(m.id)
        del history[: max(0, len(history) - self.config.acked_history)]

    # --- operations
    def put(self, queue: str, items: list[NewMessage], ids: list[int]) -> None:
        for item, seq in zip(items, ids, strict=True):
            max_attempts = item.max_attempts or self.config.max_attempts
            m = M(
                seq,
                queue,
                len(item.body),
                item.key,
                item.priority,
                max_attempts,
                self.new_order(),
                self.now,
            )
            if item.delay_s > 0:
                m.state, m.due = State.DELAYED, self.now + item.delay_s
            self.msgs[seq] = m
        self.counters[queue]["put"] += len(items)
        self.serve_waiters()

    def put_error(self, queue: str, items: list[NewMessage]) -> type[WonderQError] | None:
        config = self.config
        if any(len(i.body) > config.max_body for i in items):
            return TooLarge
        assert config.max_queue_length is not None and config.max_memory is not None
        if len(self.in_queue(queue)) + len(items) > config.max_queue_length:
            return QueueFull
        if self.bytes() + sum(len(i.body) for i in items) > config.max_memory:
            return MemoryLimit
        return None

    def get(
        self, queue: str, owner: int, max: int, lease_s: float, wait_s: float, token: int
    ) -> list[int] | None:
        if self.deliverable(queue):
            return self.lease(queue, owner, max, lease_s)
        if wait_s <= 0:
            return []
        self.waiters.append(W(token, owner, queue, max, lease_s, self.now + wait_s))
        return None

    def ack(self, owner: int, seq: int) -> None:
        self.delete(self.leased_by(owner, seq))
        self.serve_waiters()

    def ack_many(self, owner: int, seqs: list[int]) -> AckResult:
        result = AckResult(0, [], [])
        for seq in seqs:
            try:
                self.delete(self.leased_by(owner, seq))
                result.acked += 1
            except NotFound:
                result.not_found.append(seq)
            except NotLeased:
                result.not_leased.append(seq)
        self.serve_waiters()
        return result

    def nack(self, owner: int, seq: int, delay_s: float) -> bool:
        dead = self.release(self.leased_by(owner, seq), "nacked", delay_s)
        self.serve_waiters()
        return dead

    def touch(self, owner: int, seq: int, lease_s: float) -> None:
        self.leased_by(owner, seq).due = self.now + lease_s

    def disconnect(self, owner: int) -> int:
        self.waiters = [w for w in self.waiters if w.owner != owner]
        mine = [m for m in self.msgs.values() if m.state == State.LEASED and m.owner == owner]
        for m in sorted(mine, key=lambda m: m.order):
            self.release(m, "released_on_disconnect", 0.0)
        self.serve_waiters()
        return len(mine)

    def advance(self, now: float) -> None:
        self.now = now
        for _ in range(10_000):
            due = [d for d in self.dues() if d <= now]
            if not due:
                return
            at = min(due)
            firing = [m for m in self.msgs.values() if m.state != State.READY and m.due == at]
            for m in sorted(firing, key=lambda m: m.order):
                if m.state == State.LEASED:
                    self.release(m, "expired", 0.0)
                else:
                    m.state = State.READY
            self.serve_waiters()
            for w in [w for w in self.waiters if w.due == at]:
                self.waiters.remove(w)
                self.deliveries[w.token] = (w.owner, [])
        raise AssertionError("advance did not settle")

    def cancel_waits(self, owner: int, match: Callable[[object], bool]) -> int:
        ended = [w for w in self.waiters if w.owner == owner and match(w.token)]
        for w in ended:
            self.waiters.remove(w)
            self.deliveries[w.token] = (w.owner, [])
        return len(ended)

    def end_all_waits(self) -> None:
        for w in self.waiters:
            self.deliveries[w.token] = (w.owner, [])
        self.waiters = []

    def purge(self, queue: str) -> int:
        victims = [m for m in self.in_queue(queue) if m.state != State.LEASED]
        for m in victims:
            del self.msgs[m.id]
        self.counters[queue]["purged"] += len(victims)
        return len(victims)

    def redrive(self, queue: str) -> int:
        moved = [m for m in self.in_queue(queue + ".dead") if m.state == State.READY]
        for m in sorted(moved, key=lambda m: m.order):
            m.queue, m.attempts, m.order = queue, 0, self.new_order()
        self.counters[queue]["redriven"] += len(moved)
        self.serve_waiters()
        return len(moved)


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
leases = st.sampled_from([1.0, 2.0, 5.0])
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
        expected = self.model.put_error(queue, items)
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

    def do_get(self, queue: str, owner: int, max: int, lease_s: float, wait_s: float) -> None:
        token = self.next_token
        self.next_token += 1
        now = self.model.now
        got = self.engine.get(now, queue, owner, max, lease_s, wait_s=wait_s, token=token)
        expected = self.model.get(queue, owner, max, lease_s, wait_s, token)
        if got is None or expected is None:
            assert got is None and expected is None
            return
        assert [m.seq for m in got] == expected
        self.check_delivered(queue, got)
        assert all(m.owner == owner and m.due_at == now + lease_s for m in got)

    @rule(owner=owners, max=st.integers(1, 3), lease_s=leases)
    def get(self, owner: int, max: int, lease_s: float) -> None:
        self.do_get("a", owner, max, lease_s, 0.0)

    @rule(owner=owners, max=st.integers(1, 3), lease_s=leases, wait_s=waits)
    def get_or_wait(self, owner: int, max: int, lease_s: float, wait_s: float) -> None:
        self.do_get("a", owner, max, lease_s, wait_s)

    @rule(
        queue=st.sampled_from(["b", "a.dead", "b.dead"]),
        owner=owners,
        max=st.integers(1, 3),
        lease_s=leases,
        wait_s=st.sampled_from([0.0, 1.0, 3.0]),
    )
    def get_elsewhere(
        self, queue: str, owner: int, max: int, lease_s: float, wait_s: float
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
    def touch_leased(self, data: st.DataObject, lease_s: float) -> None:
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
        parity=st.sampled_from([0, 1, None]),
    )
    def manage(self, op: str, queue: str, owner: int, parity: int | None) -> None:
        now, e, model = self.model.now, self.engine, self.model
        if op == "purge":
            assert e.purge(now, queue) == model.purge(queue)
        elif op == "cancel_waits":

            def match(token: object) -> bool:
                assert isinstance(token, int)
                return parity is None or token % 2 == parity

            assert e.cancel_waits(owner, match) == model.cancel_waits(owner, match)
        else:
            e.end_all_waits()
            model.end_all_waits()

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
            ), m
            if m.state != State.READY:
                assert found.due_at == m.due, m
        remembered = {seq: q for q, seqs in model.acked.items() for seq in seqs}
        for seq in self.ids_ever:
            if seq in model.msgs:
                continue
            found = e.lookup(seq)
            if seq in remembered:
                assert isinstance(found, AckedRecord) and found.queue.name == remembered[seq]
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
            if q is None:  # only "dead" can be non-zero for a queue never used itself
                assert not any(v for k, v in expected.items() if k != "dead"), name
                continue
            stats = e.queue_stats(q, model.now)
            assert {k: stats[k] for k in expected} == expected, name
            ready_at = [m.put_at for m in mine if m.state == State.READY]
            oldest = round(model.now - min(ready_at), 6) if ready_at else None
            assert stats["oldest_ready_age"] == oldest, name
        totals = e.totals()
        assert totals["leased"] == sum(m.state == State.LEASED for m in model.msgs.values())
        assert totals["bytes"] == model.bytes()
        assert e.next_deadline() == model.next_deadline()

    @invariant()
    def rules_hold(self) -> None:
        """The rules again, checked on the engine's own records, not through the model."""
        e = self.engine
        held = [e.lookup(seq) for seq in self.model.msgs]
        msgs = [m for m in held if isinstance(m, Message)]
        leased = [m for m in msgs if m.state == State.LEASED]
        # one owner per lease, and the engine's owner index agrees
        owned = [(owner, m.seq) for owner, ms in e._owned.items() for m in ms]
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
        # no waiter beside a deliverable message
        for name in e.queue_names():
            q = e.queue(name)
            assert not (q.n_waiting and q.has_deliverable()), name

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
