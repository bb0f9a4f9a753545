"""The compact form of plain messages that were never delivered.

Owns: how the commonest message is stored while it waits in a queue, and how
it is found by id. A plain message (priority 0, no key, no delay and the
default ``max_attempts``, never delivered: ``is_plain``) put into a queue that
takes it (not a dead-letter queue: ``Queue.takes_compact``) has no ``Message``
object and no entry in the engine's id dict until it
is first leased: its queue's ``CompactFifo`` keeps its seq, body and put time in
parallel arrays, in put order. That order is also id order and put-time order,
so the head is the next to deliver and the oldest, and an id is found by
bisection. ``CompactIndex`` says which queue holds the compact messages of
each id range (runs of consecutive puts to one queue), so a lookup by id
costs two bisections whatever the number of queues.
A compact message leaves from the head (its first lease, or a PURGE, a slice
at a time), all at once (DELETE of its queue), or by name
(REMOVE: ``discard`` rebuilds the arrays without them, once per request), or
all of them as ``Message``s (``pop_run``) when their queue's ``max_attempts``
setting changes, so there are no tombstones.
A ``Message`` is built only when one leaves by ``pop`` or ``pop_run`` (its first lease);
lookups get a snapshot from ``Queue.view``.
Must never: hold a message that was ever leased, keyed, delayed or given a
priority, or decide when a message leaves (the queue and the engine do).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from broker.engine.message import Message

if TYPE_CHECKING:
    from broker.engine.queue import Queue

_TRIM_MIN = 4096  # popped slots kept before the arrays are shifted down
COLLECT_MIN = 1024  # runs kept before stale ones are looked for
SCAN_STEP = 20_000  # runs one collection step looks at (a few ms)


def is_plain(
    key: str | None, delay_s: float, priority: int, max_attempts: int | None, default: int
) -> bool:
    """The message's half of the plain-message rule: no key, no delay, priority 0, and
    the default ``max_attempts`` (None is the default). PUT asks it once per message
    and a restart once per message never delivered: keep it one expression."""
    return (
        key is None
        and priority == 0
        and delay_s <= 0
        and (max_attempts is None or max_attempts == default)
    )


class CompactFifo:
    """Never-delivered plain messages of one queue: parallel seq, body, put-time arrays.

    Slots before ``head`` are popped (their body reference already dropped); the
    arrays are shifted down once popped slots outnumber live ones.
    """

    __slots__ = ("bodies", "head", "n", "put_ats", "seqs")

    def __init__(self) -> None:
        self.seqs = array("q")
        self.bodies: list[bytes | None] = []
        self.put_ats = array("d")
        self.head = 0
        self.n = 0  # live messages: len(seqs) - head

    def append(self, seq: int, body: bytes, put_at: float) -> None:
        """Add a message at the tail; the caller checked it may join (``Queue.takes_compact``)."""
        self.seqs.append(seq)
        self.bodies.append(body)
        self.put_ats.append(put_at)
        self.n += 1

    def extend(self, first: int, bodies: list[bytes], put_at: float) -> None:
        """Add messages with the ids ``first``, ``first + 1``, ... at the tail, all put
        at ``put_at`` (``append`` for a batch; the caller checked they may join)."""
        k = len(bodies)
        self.seqs.extend(range(first, first + k))
        self.bodies.extend(bodies)
        self.put_ats.fromlist([put_at] * k)
        self.n += k

    def head_put_at(self) -> float:
        return self.put_ats[self.head]

    def pop(self, queue: Queue) -> Message:
        """Remove the head (there must be one) and return it as a ``Message`` of ``queue``."""
        i = self.head
        body = self.bodies[i]
        assert body is not None
        msg = Message(self.seqs[i], queue, body, None, 0, queue.max_attempts, self.put_ats[i])
        self.bodies[i] = None
        self._popped_to(i + 1)
        return msg

    def _popped_to(self, end: int) -> None:
        """Slots before ``end`` are popped (bodies dropped): move the head there, and
        shift the arrays down once popped slots outnumber live ones."""
        n = self.n = len(self.seqs) - end
        if end > _TRIM_MIN and end > n:
            del self.seqs[:end]
            del self.bodies[:end]
            del self.put_ats[:end]
            self.head = 0
        else:
            self.head = end

    def drop_head(self, k: int, below: int) -> tuple[array[int], int]:
        """Remove up to ``k`` messages from the head whose ids are below ``below`` (a
        sliced PURGE); their ids, and their bodies' bytes."""
        i = self.head
        end = min(i + k, bisect_left(self.seqs, below, i))
        if end <= i:
            return array("q"), 0
        seqs = self.seqs[i:end]
        size = sum(map(len, self.bodies[i:end]))  # type: ignore[arg-type]
        self.bodies[i:end] = [None] * (end - i)
        self._popped_to(end)
        return seqs, size

    def run_before(self, order: int) -> int:
        """How many messages from the head have an id below ``order``."""
        return bisect_left(self.seqs, order, self.head) - self.head

    def pop_run(self, queue: Queue, k: int, budget: int) -> list[Message]:
        """Remove up to ``k`` (1 <= k <= n) messages from the head, as ``Message``s of
        ``queue``: at least one, then no more once their bodies reach ``budget`` bytes."""
        i = self.head
        bodies = self.bodies
        end = i
        while end < i + k:
            budget -= len(bodies[end])  # type: ignore[arg-type]
            end += 1
            if budget <= 0:
                break
        attempts = queue.max_attempts
        out = [
            Message(seq, queue, body, None, 0, attempts, at)  # type: ignore[arg-type]
            for seq, body, at in zip(
                self.seqs[i:end], bodies[i:end], self.put_ats[i:end], strict=True
            )
        ]
        bodies[i:end] = [None] * (end - i)
        self._popped_to(end)
        return out

    def find(self, seq: int) -> tuple[bytes, float] | None:
        """(body, put_at) of the message with id ``seq``, if it is here."""
        seqs = self.seqs
        i = bisect_left(seqs, seq, self.head)
        if i < len(seqs) and seqs[i] == seq:
            body = self.bodies[i]
            assert body is not None
            return body, self.put_ats[i]
        return None

    def holds_between(self, lo: int, hi: int | None) -> bool:
        """Whether any message here has an id in [lo, hi) (hi None: no upper bound)."""
        seqs = self.seqs
        i = bisect_left(seqs, lo, self.head)
        return i < len(seqs) and (hi is None or seqs[i] < hi)

    def items(self, limit: int | None = None) -> Iterator[tuple[int, bytes, float]]:
        """(seq, body, put_at) of the first ``limit`` messages (all if None), in order."""
        stop = len(self.seqs) if limit is None else min(len(self.seqs), self.head + limit)
        seqs, bodies, put_ats = self.seqs, self.bodies, self.put_ats
        for i in range(self.head, stop):
            body = bodies[i]
            assert body is not None
            yield seqs[i], body, put_ats[i]

    def live_seqs(self) -> array[int]:
        return self.seqs[self.head :]

    def total_bytes(self) -> int:
        return sum(len(b) for b in self.bodies[self.head :] if b is not None)

    def discard(self, doomed: set[int]) -> tuple[list[int], int]:
        """Remove the messages whose ids are in ``doomed`` (one pass over the live ones);
        returns the ids removed, in order, and their bodies' bytes."""
        gone: list[int] = []
        size = 0
        seqs, put_ats = array("q"), array("d")
        bodies: list[bytes | None] = []
        for seq, body, put_at in self.items():
            if seq in doomed:
                gone.append(seq)
                size += len(body)
            else:
                seqs.append(seq)
                bodies.append(body)
                put_ats.append(put_at)
        if gone:
            self.seqs, self.bodies, self.put_ats = seqs, bodies, put_ats
            self.head = 0
            self.n = len(seqs)
        return gone, size

    def clear(self) -> None:
        self.seqs = array("q")
        self.bodies = []
        self.put_ats = array("d")
        self.head = 0
        self.n = 0


class CompactIndex:
    """Which queue holds the compact messages of each id range.

    ``firsts[i]`` is the first id of run i, ``owners[i]`` its queue: every
    compact message with an id in [firsts[i], firsts[i + 1]) is in that queue's
    fifo. A new run starts only when a put goes to another queue than the last
    one. Runs whose queue holds none of their ids any more are dropped by
    ``collect``, a slice at a time, so runs never outnumber twice the live
    compact messages (+1024) for longer than a collection takes.
    """

    __slots__ = ("_keep_firsts", "_keep_owners", "_live_count", "_scan", "firsts", "owners")

    def __init__(self, live_count: Callable[[], int]) -> None:
        self.firsts = array("q")
        self.owners: list[Queue] = []
        self._live_count = live_count  # compact messages held (asked only to shrink)
        # a collection under way: the runs looked at so far ([0, _scan[0]) of the first
        # _scan[1]), and those of them it keeps; lookups use the arrays as they were
        self._scan: tuple[int, int] | None = None
        self._keep_firsts = array("q")
        self._keep_owners: list[Queue] = []

    def __len__(self) -> int:
        return len(self.firsts)

    def note(self, first_seq: int, q: Queue) -> None:
        """Compact messages from ``first_seq`` on (higher than any noted before) go to ``q``."""
        owners = self.owners
        if not owners or owners[-1] is not q:
            self.firsts.append(first_seq)
            owners.append(q)

    def admits(self, seq: int) -> bool:
        """Whether ``seq`` is above every run start (so ``note`` keeps runs sorted)."""
        return not self.firsts or self.firsts[-1] <= seq

    def owner_of(self, seq: int) -> Queue | None:
        """The queue whose compact fifo would hold ``seq`` (it may not, any more)."""
        i = bisect_right(self.firsts, seq) - 1
        return self.owners[i] if i >= 0 else None

    def collect(self) -> None:
        """Drop runs that hold no compact message, once runs clearly outnumber them
        (never at or below ``COLLECT_MIN`` runs, so a caller may skip the call then),
        looking at ``SCAN_STEP`` runs a call; runs noted meanwhile are kept."""
        n = len(self.firsts)
        if self._scan is None:
            if n <= COLLECT_MIN or n <= 2 * self._live_count():
                return
            self._scan = (0, n)
            self._keep_firsts, self._keep_owners = array("q"), []
        at, end = self._scan
        stop = min(end, at + SCAN_STEP)
        firsts, owners = self.firsts, self.owners
        keep_firsts, keep_owners = self._keep_firsts, self._keep_owners
        for i in range(at, stop):
            q = owners[i]
            if not q.compact.holds_between(firsts[i], firsts[i + 1] if i + 1 < n else None):
                continue
            if keep_owners and keep_owners[-1] is q:
                continue  # the run merges into the previous one of the same queue
            keep_firsts.append(firsts[i])
            keep_owners.append(q)
        if stop < end:
            self._scan = (stop, end)
            return
        keep_firsts.extend(firsts[end:])  # noted since it began: kept as they are
        keep_owners.extend(owners[end:])
        self.firsts, self.owners = keep_firsts, keep_owners
        self._scan = None
