"""A journal that replays every change into a plain dict and checks it on the way.

If the engine reports changes out of order (say, the lease of the next message of a
key before the ack of the one that held the key), the replay sees a state that
breaks a rule and fails at once. ``assert_matches`` compares the replay with the
engine. The end of a delay is not a journaled change (it follows from ``due_at``
and the clock), so a DELAYED row may be leased, and counts as READY once due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from broker.engine import Engine, Headers, Message, NewMessageFields, Queue, State


@dataclass
class Row:
    queue: str
    state: State
    attempts: int
    key: str | None
    order: int
    due_at: float


class ReplayJournal:
    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.events: list[tuple[str, list[int]]] = []
        self.headers: dict[int, Headers] = {}  # of the messages that have some
        self.dedup: dict[tuple[str, str], tuple[int, float]] = {}  # (queue, id) -> (seq, until)
        self.queues: dict[str, tuple[object, bool]] = {}  # queue -> (settings, paused)

    def _row(self, msg: Message) -> Row:
        due_at = msg.due_at if msg.state == State.DELAYED else 0.0
        return Row(msg.queue.name, msg.state, msg.attempts, msg.key, msg.order, due_at)

    def put(
        self,
        queue: Queue,
        first_seq: int,
        put_at: float,
        items: Sequence[NewMessageFields],
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        seqs = list(range(first_seq, first_seq + len(items)))
        self.events.append(("put", seqs))
        for seq, h in zip(seqs, headers or [None] * len(seqs), strict=True):
            if h is not None:
                self.headers[seq] = h
        for seq, (_, key, delay_s, _, _) in zip(seqs, items, strict=True):
            assert seq not in self.rows, f"put of an id already held: {seq}"
            delayed = delay_s > 0
            due_at = put_at + delay_s if delayed else 0.0
            state = State.DELAYED if delayed else State.READY
            self.rows[seq] = Row(queue.name, state, 0, key, seq, due_at)

    def lease(self, msgs: list[Message]) -> None:
        self.events.append(("lease", [m.seq for m in msgs]))
        for m in msgs:
            row = self.rows[m.seq]
            assert row.state != State.LEASED, "lease of a leased message"
            assert m.state == State.LEASED
            assert m.attempts == row.attempts + 1
            if m.key is not None:
                earlier = [
                    s
                    for s, r in self.rows.items()
                    if r.queue == row.queue and r.key == m.key and r.order < row.order
                ]
                assert not earlier, f"{m.seq} leased while earlier {earlier} of its key remain"
            self.rows[m.seq] = self._row(m)

    def ack(self, msg: Message) -> None:
        self.events.append(("ack", [msg.seq]))
        assert self.rows.pop(msg.seq).state == State.LEASED
        self.headers.pop(msg.seq, None)

    def release(self, msg: Message) -> None:
        self.events.append(("release", [msg.seq]))
        assert self.rows[msg.seq].state == State.LEASED
        assert msg.state in (State.READY, State.DELAYED)
        self.rows[msg.seq] = self._row(msg)

    def dead(self, msg: Message, source: Queue) -> None:
        self.events.append(("dead", [msg.seq]))
        row = self.rows[msg.seq]
        assert (row.queue, row.state) == (source.name, State.LEASED)
        assert msg.queue.name == source.name + ".dead"
        self.rows[msg.seq] = self._row(msg)

    def redrive(self, msgs: list[Message], source: Queue) -> None:
        self.events.append(("redrive", [m.seq for m in msgs]))
        for m in msgs:
            row = self.rows[m.seq]
            assert row.queue == source.name and row.state != State.LEASED
            assert m.attempts == 0
            self.rows[m.seq] = self._row(m)

    def remember(
        self, queue: Queue, put_at: float, window_s: float, pairs: Sequence[tuple[str, int]]
    ) -> None:
        self.events.append(("remember", [seq for _, seq in pairs]))
        for dedup, seq in pairs:
            assert seq in self.rows, "a dedup id of a message never put"
            self.dedup[(queue.name, dedup)] = (seq, put_at + window_s)

    def purge(self, queue: Queue, seqs: list[int]) -> None:
        self.events.append(("purge", list(seqs)))
        for seq in seqs:
            row = self.rows.pop(seq)
            self.headers.pop(seq, None)
            assert row.queue == queue.name and row.state != State.LEASED

    def configure(self, queue: Queue) -> None:
        self.events.append(("configure", []))
        self.queues[queue.name] = (queue.settings, queue.paused)

    def drop(self, queue: Queue, seqs: list[int]) -> None:
        self.events.append(("drop", list(seqs)))
        for seq in seqs:
            assert self.rows.pop(seq).queue == queue.name
            self.headers.pop(seq, None)
        held = [s for s, row in self.rows.items() if row.queue == queue.name]
        assert not held, f"{queue.name} deleted, but {held} of it were not"
        self.queues.pop(queue.name, None)
        for key in [k for k in self.dedup if k[0] == queue.name]:
            del self.dedup[key]

    def assert_matches(self, engine: Engine, now: float) -> None:
        """The replayed state is the engine's state at ``now``."""
        assert engine.totals()["messages"] == len(self.rows)
        leased = sum(row.state == State.LEASED for row in self.rows.values())
        assert engine.totals()["leased"] == leased  # (a counter, not a walk over the queues)
        for seq, row in self.rows.items():
            msg = engine.lookup(seq)
            assert isinstance(msg, Message), seq
            if row.state == State.DELAYED and row.due_at <= now:
                row = replace(row, state=State.READY, due_at=0.0)
            assert self._row(msg) == row, seq
            assert msg.headers == self.headers.get(seq), seq
        for name, (settings, paused) in self.queues.items():
            q = engine.find_queue(name)
            assert q is not None and (q.settings, q.paused) == (settings, paused), name
        live = {(q, d): seq for q, d, seq, _, _ in engine.dedup_ids(now)}
        remembered = {k: seq for k, (seq, until) in self.dedup.items() if until > now}
        assert live.items() <= remembered.items()  # the engine forgets early at its bound only
        assert len(remembered) - len(live) <= engine.dedup_totals()["dedup_evicted"]
