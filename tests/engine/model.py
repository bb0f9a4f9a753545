"""A deliberately naive reference model of the engine, for the property tests.

The model keeps every message in one dict and answers every question by scanning
it: a message is deliverable when it is ready and no earlier message of its key
(any state) is left in its queue, and deliverable messages go out by (priority,
order). Time is the model's ``now``; deadlines fire one instant at a time: at an
instant, leases and delays due then are handled first (in queue order), then
waiters are served (a rate limit's tokens counted at that instant), then the
waits due then end empty.

A queue has settings (None: the server's), a paused flag and, with a rate, a
token bucket; dedup ids live in one dict with their first-put instant and
window, and at the bound the one put first (then the shortest window, then the
first remembered) is forgotten. tests/engine/test_model.py drives the engine
against it, tests/hardening/test_tcp_model.py a real server.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from broker.config import Config
from broker.engine import AckResult, Headers, NewMessage, Picked, State
from broker.engine.compact import is_plain
from broker.engine.footprint import COMPACT, KEY, MESSAGE, QUEUE
from broker.errors import MemoryLimit, NotFound, NotLeased, QueueFull, TooLarge, WonderQError

QUEUES = ("a", "b", "a.dead", "b.dead")
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
SETTING_NAMES = ("lease_s", "max_attempts", "max_length", "rate", "dedup_window_s")
ROUNDING = 1e-9  # of a token (broker/engine/rate.py)


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
    headers: Headers | None = None


@dataclass
class W:
    token: int
    owner: int
    queue: str
    max: int
    lease_s: float
    due: float


@dataclass
class B:
    """A token bucket: at most max(1, rate) tokens, ``rate`` back per second."""

    rate: float
    tokens: float
    at: float

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def whole(self, now: float) -> int:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return int(self.tokens + ROUNDING)

    def next_at(self) -> float:
        return max(self.at + (1.0 - self.tokens) / self.rate, math.nextafter(self.at, math.inf))


@dataclass
class Q:
    """What a queue holds besides its messages."""

    settings: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(SETTING_NAMES))
    paused: bool = False
    bucket: B | None = None


@dataclass
class D:
    """A remembered dedup id."""

    seq: int
    put_at: float
    window_s: float
    n: int  # when it was remembered, for ties

    @property
    def until(self) -> float:
        return self.put_at + self.window_s

    @property
    def age(self) -> tuple[float, float, int]:
        """The order of forgetting at the bound: first put, then shorter window, then first
        remembered."""
        return (self.put_at, self.window_s, self.n)


@dataclass
class Model:
    config: Config
    now: float = 0.0
    msgs: dict[int, M] = field(default_factory=dict)
    waiters: list[W] = field(default_factory=list)  # arrival order
    # the acked history: seq -> its queue, for ids INFO may say "acked" of; ``acked_order``
    # holds every id acked, in order, at most acked_history (a deleted queue's stay there)
    acked: dict[int, str] = field(default_factory=dict)
    acked_order: list[int] = field(default_factory=list)
    acked_attempts: dict[int, int] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    )
    deliveries: dict[int, tuple[int, list[int]]] = field(default_factory=dict)
    last_order: int = 0
    queues: dict[str, Q] = field(default_factory=dict)  # the queues that exist
    dedup: dict[tuple[str, str], D] = field(default_factory=dict)
    evicted: int = 0
    remembered: Any = field(default_factory=count)

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
        tokens = [
            q.bucket.next_at()
            for name, q in self.queues.items()
            if q.bucket is not None
            and not q.paused
            and any(w.queue == name for w in self.waiters)
            and self.deliverable(name)
        ]
        return timed + [w.due for w in self.waiters] + tokens

    def next_deadline(self) -> float | None:
        return min(self.dues(), default=None)

    def bytes(self) -> int:
        return sum(m.size for m in self.msgs.values())

    def setting(self, queue: str, name: str) -> Any:
        """A queue's setting as it works: its own, else the server's."""
        q = self.queues.get(queue)
        mine = q.settings[name] if q is not None else None
        if mine is not None:
            return mine
        server = {
            "lease_s": self.config.lease_s,
            "max_attempts": self.config.max_attempts,
            "max_length": self.config.max_queue_length,
            "rate": None,
            "dedup_window_s": self.config.dedup_window_s,
        }
        return server[name]

    def effective(self, queue: str) -> tuple[Any, ...]:
        return tuple(self.setting(queue, name) for name in SETTING_NAMES)

    def create(self, queue: str) -> Q:
        q = self.queues.get(queue)
        if q is None:
            q = self.queues[queue] = Q()
        return q

    def existing(self, queue: str) -> Q:
        q = self.queues.get(queue)
        if q is None:
            raise NotFound(queue)
        return q

    def allowed(self, queue: str, at: float) -> int:
        """How many messages a queue may deliver at ``at``."""
        q = self.queues[queue]
        if q.paused:
            return 0
        if q.bucket is not None:
            return q.bucket.whole(at)
        return 10**9

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
            total += m.size + sum(len(k) + len(v) + 6 for k, v in (m.headers or {}).items())
        bucket = self.queues[queue].bucket
        if bucket is not None:
            bucket.tokens -= len(out)
        return out

    def serve_waiters(self, at: float | None = None) -> None:
        at = self.now if at is None else at
        for w in list(self.waiters):
            if self.deliverable(w.queue):
                allowed = self.allowed(w.queue, at)
                if not allowed:
                    continue
                self.waiters.remove(w)
                msgs = self.lease(w.queue, w.owner, min(w.max, allowed), w.lease_s)
                self.deliveries[w.token] = (w.owner, msgs)

    def release(self, m: M, reason: str, delay_s: float) -> bool:
        self.counters[m.queue][reason] += 1
        m.owner = None
        if m.attempts >= m.max_attempts and not m.queue.endswith(".dead"):
            self.counters[m.queue]["dead_lettered"] += 1
            m.queue += ".dead"
            self.create(m.queue)
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
            if seq in self.acked:
                raise NotLeased("acked already")
            raise NotFound("")
        if m.state != State.LEASED or m.owner != owner:
            raise NotLeased("")
        return m

    def delete(self, m: M) -> None:
        del self.msgs[m.id]
        self.counters[m.queue]["acked"] += 1
        if self.config.acked_history:
            self.acked[m.id] = m.queue
            self.acked_attempts[m.id] = m.attempts
            self.acked_order.append(m.id)
        while len(self.acked_order) > self.config.acked_history:  # one bound for all queues
            self.acked.pop(self.acked_order.pop(0), None)

    # --- operations
    def put(
        self,
        queue: str,
        items: Sequence[NewMessage],
        ids: Sequence[int],
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        self.create(queue)
        default = self.setting(queue, "max_attempts")
        for i, (item, seq) in enumerate(zip(items, ids, strict=True)):
            m = M(
                seq,
                queue,
                len(item.body),
                item.key,
                item.priority,
                item.max_attempts or default,
                self.new_order(),
                self.now,
                headers=headers[i] if headers is not None else None,
            )
            if item.delay_s > 0:
                m.state, m.due = State.DELAYED, self.now + item.delay_s
            self.msgs[seq] = m
        self.counters[queue]["put"] += len(items)
        self.serve_waiters()

    def put_error(
        self,
        queue: str,
        items: Sequence[NewMessage],
        footprint: int | None = None,
        headers: Sequence[dict[str, str] | None] = (),
    ) -> type[WonderQError] | None:
        """The error a PUT of ``items`` gets, if any; ``footprint``: what the engine says it
        holds (footprint.py is checked on its own: the model counts bodies only);
        ``headers``: the items' (a batch that carries any is stored as message objects,
        none of them plain)."""
        config = self.config
        if any(len(i.body) > config.max_body for i in items):
            return TooLarge
        limit = self.setting(queue, "max_length")
        if limit is not None and len(self.in_queue(queue)) + len(items) > limit:
            return QueueFull
        if config.max_memory is not None:
            assert footprint is not None
            default = self.setting(queue, "max_attempts")
            more = sum(
                len(i.body)
                + (
                    COMPACT
                    if not any(headers)
                    and is_plain(i.key, i.delay_s, i.priority, i.max_attempts, default)
                    else MESSAGE + (0 if i.key is None else KEY + len(i.key))
                )
                for i in items
            )
            if queue not in self.queues:
                more += QUEUE
            if footprint + more > config.max_memory:
                return MemoryLimit
        return None

    def sort_dedup(
        self, queue: str, dedups: Sequence[str | None]
    ) -> tuple[list[int | None], list[int], list[int]]:
        """Each item's id if it is a duplicate (else None), the duplicates' indexes, and the
        indexes of the items to store."""
        ids: list[int | None] = [None] * len(dedups)
        duplicates, fresh = [], []
        first: dict[str, int] = {}
        for i, d in enumerate(dedups):
            hit = self.dedup.get((queue, d)) if d is not None else None
            if d is not None and hit is not None and hit.until > self.now:
                ids[i] = hit.seq
                duplicates.append(i)
            elif d is not None and d in first:
                duplicates.append(i)
            else:
                if d is not None:
                    first[d] = i
                fresh.append(i)
        return ids, duplicates, fresh

    def remember(self, queue: str, pairs: Sequence[tuple[str, int]]) -> None:
        window = self.setting(queue, "dedup_window_s")
        for d, seq in pairs:
            self.dedup[(queue, d)] = D(seq, self.now, window, next(self.remembered))
        for key in [k for k, v in self.dedup.items() if v.until <= self.now]:
            del self.dedup[key]
        while len(self.dedup) > self.config.max_dedup_ids:
            oldest = min(self.dedup, key=lambda k: self.dedup[k].age)
            del self.dedup[oldest]
            self.evicted += 1

    def live_dedup(self) -> dict[tuple[str, str], int]:
        return {k: v.seq for k, v in self.dedup.items() if v.until > self.now}

    def get(
        self,
        queue: str,
        owner: int,
        max: int,
        lease_s: float | None,
        wait_s: float,
        token: int,
    ) -> list[int] | None:
        lease_s = self.setting(queue, "lease_s") if lease_s is None else lease_s
        if self.deliverable(queue):
            allowed = self.allowed(queue, self.now)
            if allowed:
                return self.lease(queue, owner, min(max, allowed), lease_s)
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

    def touch(self, owner: int, seq: int, lease_s: float | None) -> None:
        m = self.leased_by(owner, seq)
        m.due = self.now + (self.setting(m.queue, "lease_s") if lease_s is None else lease_s)

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
            self.serve_waiters(at)
            for w in [w for w in self.waiters if w.due == at]:
                self.waiters.remove(w)
                self.deliveries[w.token] = (w.owner, [])
        raise AssertionError("advance did not settle")

    def cancel_waits(self, owner: int, parity: int) -> int:
        """End the owner's waits whose token has this parity (their key in the engine)."""
        ended = [w for w in self.waiters if w.owner == owner and w.token % 2 == parity]
        for w in ended:
            self.end_empty(w)
        return len(ended)

    def end_empty(self, w: W) -> None:
        self.waiters.remove(w)
        self.deliveries[w.token] = (w.owner, [])

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
        if queue + ".dead" not in self.queues:
            return 0
        src = queue + ".dead"
        moved: list[M] = []
        while deliverable := self.deliverable(src):  # in delivery order, each freeing its key
            moved.append(deliverable[0])
            deliverable[0].queue = "\0moving"
        held = [m for m in self.in_queue(src) if m.state == State.READY]  # behind their key
        moved += sorted(held, key=lambda m: (m.priority, m.order))
        return self.move_back(queue, moved, in_order=True)

    def move_back(self, queue: str, moved: list[M], in_order: bool = False) -> int:
        """Move ``moved`` to the end of ``queue``: in their order there, or as given."""
        if not moved:
            return 0  # makes no queue
        self.create(queue)
        for m in moved if in_order else sorted(moved, key=lambda m: m.order):
            m.queue, m.attempts, m.order = queue, 0, self.new_order()
            m.state = State.READY
        self.counters[queue]["redriven"] += len(moved)
        self.serve_waiters()
        return len(moved)

    def pick(self, queue: str, seqs: Sequence[int]) -> tuple[list[M], Picked]:
        chosen: list[M] = []
        out = Picked(0, [], [])
        for seq in seqs:
            m = self.msgs.get(seq)
            if m is None or m.queue != queue or m in chosen:
                out.not_found.append(seq)
            elif m.state == State.LEASED:
                out.leased.append(seq)
            else:
                chosen.append(m)
        out.done = len(chosen)
        return chosen, out

    def redrive_ids(self, queue: str, seqs: Sequence[int]) -> Picked:
        if queue + ".dead" not in self.queues:
            return Picked(0, [], list(seqs))
        moved, out = self.pick(queue + ".dead", seqs)
        self.move_back(queue, moved)
        return out

    def remove(self, queue: str, seqs: Sequence[int]) -> Picked:
        self.existing(queue)
        gone, out = self.pick(queue, seqs)
        for m in gone:
            del self.msgs[m.id]
        self.serve_waiters()
        return out

    def delete_queue(self, queue: str, dead: bool) -> int:
        self.existing(queue)
        deleted = self.drop(queue)
        if dead and queue + ".dead" in self.queues:
            deleted += self.drop(queue + ".dead")
        return deleted

    def drop(self, queue: str) -> int:
        gone = self.in_queue(queue)
        for m in gone:
            del self.msgs[m.id]
        for w in [w for w in self.waiters if w.queue == queue]:
            self.end_empty(w)
        for seq in [seq for seq, q in self.acked.items() if q == queue]:
            del self.acked[seq]  # (its place in acked_order stays taken)
        self.counters.pop(queue, None)
        del self.queues[queue]
        for key in [k for k in self.dedup if k[0] == queue]:
            del self.dedup[key]
        return len(gone)

    def pause(self, queue: str) -> None:
        self.create(queue).paused = True

    def resume(self, queue: str) -> None:
        self.existing(queue).paused = False
        self.serve_waiters()

    def configure(self, queue: str, changes: dict[str, Any]) -> tuple[Any, ...]:
        if not changes:
            self.existing(queue)
            return self.effective(queue)
        q = self.create(queue)
        q.settings.update(changes)
        rate = q.settings["rate"]
        if rate is None:
            q.bucket = None
        elif q.bucket is None:
            q.bucket = B(rate, max(1.0, rate), self.now)
        elif q.bucket.rate != rate:
            q.bucket.whole(self.now)
            q.bucket = B(rate, min(max(1.0, rate), q.bucket.tokens), self.now)
        self.serve_waiters()
        return self.effective(queue)
