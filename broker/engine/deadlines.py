"""One heap of deadlines for the whole engine, with lazy deletion.

Owns: when anything next needs doing (lease expiry, end of a delay, end of a
waiting GET). Entries are never removed from the middle: a cancelled or moved
deadline leaves a stale entry that ``pop_due`` skips, because the owner of a
deadline records the instant it currently wants (``due_at``) and the entry is
live only while that still matches. The heap is rebuilt when stale entries
outnumber live ones, so touching a lease forever cannot grow it without bound.
Must never: read the clock (callers pass ``now``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import count
from typing import Generic, TypeVar

T = TypeVar("T")

_COMPACT_MIN = 1024


class DeadlineHeap(Generic[T]):
    """A min-heap of (instant, tiebreak, item) with a liveness predicate."""

    __slots__ = ("_heap", "_is_live", "_tiebreak")

    def __init__(self, is_live: Callable[[T, float], bool]) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._is_live = is_live
        self._tiebreak = count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, item: T) -> None:
        heapq.heappush(self._heap, (at, next(self._tiebreak), item))

    def next_at(self) -> float | None:
        """The earliest live deadline, dropping stale entries on the way."""
        heap = self._heap
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
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            if self._is_live(item, at):
                return item
        return None

    def compact(self, live_count: int) -> None:
        """Drop stale entries when they clearly outnumber live ones."""
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * live_count:
            self._heap = [e for e in self._heap if self._is_live(e[2], e[0])]
            heapq.heapify(self._heap)
