"""One heap of deadlines for the whole engine, with lazy deletion.

Owns: when anything next needs doing (lease expiry, end of a delay, end of a
waiting GET). Entries are never removed from the middle: a cancelled or moved
deadline leaves a stale entry that ``pop_due`` skips, because the owner of a
deadline records the instant it currently wants (``due_at``) and the entry is
live only while that still matches. The heap is rebuilt when stale entries
outnumber live ones, so touching a lease forever cannot grow it without bound.
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
    """A min-heap of (instant, tiebreak, item) with a liveness predicate."""

    __slots__ = ("_is_live", "_live_count", "_tiebreak", "entries")

    def __init__(self, is_live: Callable[[T, float], bool], live_count: Callable[[], int]) -> None:
        # the heap; read-only outside, where its size says whether compact() is due
        self.entries: list[tuple[float, int, T]] = []
        self._is_live = is_live
        self._live_count = live_count  # how many entries are live (asked only to shrink)
        self._tiebreak = count()

    def __len__(self) -> int:
        return len(self.entries)

    def push(self, at: float, item: T) -> None:
        heapq.heappush(self.entries, (at, next(self._tiebreak), item))

    def next_at(self) -> float | None:
        """The earliest live deadline, dropping stale entries on the way."""
        heap = self.entries
        while heap:
            at, _, item = heap[0]
            if self._is_live(item, at):
                return at
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> T | None:
        """Remove and return the earliest live item due at or before ``now``.

        Liveness is checked at the moment of the pop, so handling one item may
        kill later entries (of the same item, or others) safely.
        """
        heap = self.entries
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            if self._is_live(item, at):
                return item
        return None

    def compact(self) -> None:
        """Drop stale entries when they clearly outnumber live ones (never at or below
        ``COMPACT_MIN`` entries, so a caller may skip the call then)."""
        n = len(self.entries)
        if n > COMPACT_MIN and n > 2 * self._live_count():
            self.entries = [e for e in self.entries if self._is_live(e[2], e[0])]
            heapq.heapify(self.entries)
