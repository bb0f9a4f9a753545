"""One heap of deadlines for the whole engine, with lazy deletion.

Owns: when anything next needs doing (lease expiry, end of a delay, end of a
waiting GET). Entries are never removed from the middle: a cancelled or moved
deadline leaves a stale entry that ``pop_due`` skips, because the owner of a
deadline records the instant it currently wants (``due_at``) and the entry is
live only while that still matches. The heap is rebuilt when stale entries
outnumber live ones, a slice at a time (a million entries are not looked at in
one call), so touching a lease forever cannot grow it without bound.
The engine's entries are ``Timed``: a delayed ``Message``, a ``Waiter``, a
``LeaseBatch`` (the leases one GET granted, one entry for all), or a rate
limit's ``Bucket`` (its next token, while consumers wait on it); ``is_live``
says when such an entry still stands (see the engine's invariants).
Must never: read the clock (callers pass ``now``).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from itertools import count
from typing import Generic, TypeVar

from broker.engine.message import LEASED, READY, Message
from broker.engine.rate import Bucket
from broker.engine.waiter import Waiter

T = TypeVar("T")

COMPACT_MIN = 1024  # entries kept before stale ones are looked for
MOVE_STEP = 10_000  # entries one compaction step looks at (a few ms)

#: The messages one GET leased, with one deadline entry for all of them: a batch GET
#: pushes one entry instead of 64, and a batch ACK leaves one stale entry, not 64.
LeaseBatch = list[Message]
Timed = Message | Waiter | LeaseBatch | Bucket


def is_live(item: Timed, at: float) -> bool:
    """Whether the engine's entry for ``item`` at ``at`` still stands: the item still
    wants that instant, and is still a timed message, an active waiter, or a bucket
    its queue waits on."""
    if type(item) is list:
        return _batch_is_live(item, at)
    if item.due_at != at:  # type: ignore[union-attr]
        return False
    if type(item) is Waiter:
        return item.active
    if type(item) is Bucket:
        return _bucket_is_live(item)
    return item.state != READY  # type: ignore[union-attr]


def _bucket_is_live(bucket: Bucket) -> bool:
    """Live while its queue waits on its next token; once not, the bucket forgets the
    instant (so the engine arms it again when the queue waits again)."""
    if bucket.wanted():
        return True
    bucket.due_at = math.nan
    return False


def _batch_is_live(batch: LeaseBatch, at: float) -> bool:
    """Live while a member is still leased until ``at``. Members before the first
    such one are dropped on sight, so each is looked at a bounded number of times
    and a live batch's first member is leased until ``at``."""
    for i, msg in enumerate(batch):
        if msg.due_at == at and msg.state == LEASED:
            if i:
                del batch[:i]
            return True
    batch.clear()
    return False


class DeadlineHeap(Generic[T]):
    """A min-heap of (instant, tiebreak, item) with a liveness predicate.

    Compaction goes a slice at a time: the heap as it was becomes ``old`` and a
    new one takes the pushes; each ``compact`` call moves at most ``MOVE_STEP``
    entries from the end of ``old`` (what is left of a heap after its last entry
    goes is a heap) into the new one, dropping the stale; meanwhile ``next_at`` and
    ``pop_due`` read the earlier of both tops.
    """

    __slots__ = ("_is_live", "_live_count", "_tiebreak", "entries", "old")

    def __init__(self, is_live: Callable[[T, float], bool], live_count: Callable[[], int]) -> None:
        # the heap; read-only outside, where its size says whether compact() is due
        self.entries: list[tuple[float, int, T]] = []
        self.old: list[tuple[float, int, T]] = []  # being compacted into ``entries``
        self._is_live = is_live
        self._live_count = live_count  # how many entries are live (asked only to shrink)
        self._tiebreak = count()

    def __len__(self) -> int:
        return len(self.entries) + len(self.old)

    def push(self, at: float, item: T) -> None:
        heapq.heappush(self.entries, (at, next(self._tiebreak), item))

    def _top(self, heap: list[tuple[float, int, T]]) -> float | None:
        """The instant of ``heap``'s earliest live entry, dropping stale ones on the way."""
        while heap:
            at, _, item = heap[0]
            if self._is_live(item, at):
                return at
            heapq.heappop(heap)
        return None

    def next_at(self) -> float | None:
        """The earliest live deadline, dropping stale entries on the way."""
        at = self._top(self.entries)
        if self.old:
            old_at = self._top(self.old)
            if old_at is not None and (at is None or old_at < at):
                return old_at
        return at

    def pop_due(self, now: float) -> T | None:
        """Remove and return the earliest live item due at or before ``now``.

        Liveness is checked at the moment of the pop, so handling one item may
        kill later entries (of the same item, or others) safely.
        """
        heap = self.entries
        old = self.old
        while True:
            at = self._top(heap)
            if old:
                old_at = self._top(old)
                if old_at is not None and (at is None or old_at < at):
                    heap, at = old, old_at
            if at is None or at > now:
                return None
            item = heapq.heappop(heap)[2]
            if self._is_live(item, at):
                return item

    def compact(self) -> None:
        """Drop stale entries when they clearly outnumber live ones (never at or below
        ``COMPACT_MIN`` entries, so a caller may skip the call then), at most
        ``MOVE_STEP`` of them a call (see the class docstring)."""
        if not self.old:
            n = len(self.entries)
            if n <= COMPACT_MIN or n <= 2 * self._live_count():
                return
            self.old, self.entries = self.entries, []
        old, heap, is_live = self.old, self.entries, self._is_live
        for _ in range(min(MOVE_STEP, len(old))):
            entry = old.pop()
            if is_live(entry[2], entry[0]):
                heapq.heappush(heap, entry)
