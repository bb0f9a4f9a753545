"""Dedup ids: the ``dedup`` strings a queue's PUTs used within its window, bounded broker-wide.

Owns: remembering each dedup id a PUT stored a message under, per queue
(``Queue.dedup``: id -> (seq, expires_at)), until its window ends: the window
in force at its first PUT, counted from that PUT whether or not the message was
delivered or acked since. Forgetting is lazy, with no timer per id: entries are
kept in first-put order in one deque per window length (ids that share a
window expire in the order they came), and expired ones are dropped from the
heads: of the deque a PUT adds to, on every PUT with a dedup id, and of every
deque at the bound. A lookup checks the instant itself, so an id past its
window never answers, dropped yet or not.
The bound: at most ``limit`` ids over the whole broker (``--max-dedup-ids``).
Past it, the oldest (the earliest first PUT of every deque's head) is forgotten
before its window ends and counted in ``evicted``.
A deque entry is (queue name, id, seq, expires_at), plain values only (nothing
for the cyclic collector to walk). An entry is stale once its queue was deleted
or its id was used again after it expired; stale entries are skipped, and the
deques are rebuilt when they outnumber the live ids.
Must never: read a clock, decide what a duplicate PUT is answered (commands.py
does), or keep an id of a deleted queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from broker.engine.queue import Queue

#: one remembered id, in its window's deque: (queue name, dedup id, seq, expires_at)
Entry = tuple[str, str, int, float]
#: one live id as a snapshot writes it: (queue name, dedup id, seq, first put at, window)
Remembered = tuple[str, str, int, float, float]

REBUILD_MIN: Final = 1024  # stale entries kept before the deques are rebuilt


class DedupIds:
    __slots__ = ("_entries", "_fifos", "_find", "evicted", "limit", "n")

    def __init__(self, limit: int, find: Callable[[str], Queue | None]) -> None:
        self.limit = limit
        self._find = find  # a queue by name (None once deleted)
        self._fifos: dict[float, deque[Entry]] = {}  # window length -> entries in put order
        self._entries = 0  # entries in every deque, live or stale
        self.n = 0  # ids remembered: the sizes of every Queue.dedup, summed
        self.evicted = 0  # ids forgotten before their window ended, at the bound

    @staticmethod
    def find(q: Queue, dedup: str, now: float) -> int | None:
        """The seq of the message first put with ``dedup`` in ``q``, if still in its window."""
        hit = q.dedup.get(dedup)
        if hit is not None and hit[1] > now:
            return hit[0]
        return None

    def add(self, q: Queue, now: float, window_s: float, pairs: Sequence[tuple[str, int]]) -> None:
        """Remember ``(dedup, seq)`` pairs first put in ``q`` at ``now``, for ``window_s``."""
        expires_at = now + window_s
        ids = q.dedup
        fifo = self._fifos.get(window_s)
        if fifo is None:
            fifo = self._fifos[window_s] = deque()
        name = q.name
        for dedup, seq in pairs:
            if dedup not in ids:  # one past its window is replaced in place
                self.n += 1
            ids[dedup] = (seq, expires_at)
            fifo.append((name, dedup, seq, expires_at))
        self._entries += len(pairs)
        self._settle(fifo, now)

    def restore(self, q: Queue, now: float, entry: Remembered) -> None:
        """Remember an id read back after a restart (``put_at`` on this clock; in put
        order, oldest first). One already past its window is not kept."""
        _, dedup, seq, put_at, window_s = entry
        if put_at + window_s > now:
            self.add(q, put_at, window_s, [(dedup, seq)])

    def _settle(self, fifo: deque[Entry], now: float) -> None:
        """After an add: drop expired heads, keep the bound, bound the stale entries."""
        self._drop_expired(fifo, now)
        if self.n > self.limit:
            self._evict(now)
        if self._entries > 2 * self.n + REBUILD_MIN:
            self._rebuild()

    def _live(self, entry: Entry) -> Queue | None:
        """The queue whose id ``entry`` still is, or None if the entry is stale."""
        q = self._find(entry[0])
        if q is None:
            return None
        hit = q.dedup.get(entry[1])
        return q if hit is not None and hit[0] == entry[2] else None

    def _drop_expired(self, fifo: deque[Entry], now: float) -> None:
        """Pop expired entries from the head (forgetting those still live): one compare
        when none has expired, as on most PUTs."""
        while fifo and fifo[0][3] <= now:
            entry = fifo.popleft()
            self._entries -= 1
            q = self._live(entry)
            if q is not None:
                del q.dedup[entry[1]]
                self.n -= 1

    def _drop_stale(self, fifo: deque[Entry]) -> None:
        """Pop stale entries from the head, so that the head is a live id."""
        while fifo and self._live(fifo[0]) is None:
            fifo.popleft()
            self._entries -= 1

    def _evict(self, now: float) -> None:
        """Forget expired ids everywhere, then the oldest live ones until within the bound."""
        for window_s, fifo in list(self._fifos.items()):
            self._drop_expired(fifo, now)
            self._drop_stale(fifo)
            if not fifo:
                del self._fifos[window_s]
        while self.n > self.limit:
            # every head is live now: the oldest is the earliest first put among them
            # (of two put at one instant, the one with the shorter window)
            window_s = min(self._fifos, key=lambda w: (self._fifos[w][0][3] - w, w))
            fifo = self._fifos[window_s]
            name, dedup, _, _ = fifo.popleft()
            self._entries -= 1
            q = self._find(name)
            assert q is not None
            del q.dedup[dedup]
            self.n -= 1
            self.evicted += 1
            self._drop_stale(fifo)
            if not fifo:
                del self._fifos[window_s]

    def _rebuild(self) -> None:
        """Drop every stale entry (they outnumber the live ids)."""
        for window_s, fifo in list(self._fifos.items()):
            kept = deque(e for e in fifo if self._live(e) is not None)
            if kept:
                self._fifos[window_s] = kept
            else:
                del self._fifos[window_s]
        self._entries = sum(len(f) for f in self._fifos.values())

    def forget_queue(self, q: Queue) -> None:
        """``q`` is deleted: its ids go (their deque entries are stale from now on)."""
        self.n -= len(q.dedup)
        q.dedup = {}

    def live(self, now: float) -> Iterator[Remembered]:
        """Every id still in its window, oldest first within each window length."""
        for window_s, fifo in self._fifos.items():
            for entry in fifo:
                if entry[3] > now and self._live(entry) is not None:
                    name, dedup, seq, expires_at = entry
                    yield name, dedup, seq, expires_at - window_s, window_s
