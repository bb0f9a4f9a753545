"""Idle deadlines of every connection, in one heap with lazy deletion (sans-IO, no clock).

Owns: each tracked key's deadline (``timeout_s`` after it was last active), and
which keys have passed theirs. ``touch`` records activity explicitly; a key
that records its own last activity cheaply (a connection stamps every request)
is instead asked for it by ``expired(now, last_active)`` when its deadline
comes: if it was active since, its deadline moves on, exactly, and nothing was
paid per request. Entries of keys forgotten or moved stay in the heap until
they reach its top, or until they outnumber the live ones (then it is rebuilt).
The server arms one loop timer at ``next_deadline()`` (never one timer per
connection) and calls ``expired(now)`` when it fires.
Must never: read the clock (every call takes ``now``) or close anything itself.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class IdleTracker(Generic[K]):
    __slots__ = ("_deadlines", "_heap", "_order", "timeout_s")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._deadlines: dict[K, float] = {}  # key -> its live deadline
        self._heap: list[tuple[float, int, K]] = []  # (deadline, tie-break, key), some stale
        self._order = itertools.count()  # keys need not be orderable

    def __len__(self) -> int:
        return len(self._deadlines)

    def touch(self, key: K, now: float) -> None:
        """``key`` was active at ``now`` (a new key starts its idle time now)."""
        self._push(key, now + self.timeout_s)

    def forget(self, key: K) -> None:
        if self._deadlines.pop(key, None) is not None:
            self._compact_if_stale()

    def next_deadline(self) -> float | None:
        heap, deadlines = self._heap, self._deadlines
        while heap:
            deadline, _, key = heap[0]
            if deadlines.get(key) == deadline:
                return deadline
            heapq.heappop(heap)  # forgotten, or moved later
        return None

    def expired(self, now: float, last_active: Callable[[K], float] | None = None) -> list[K]:
        """Remove and return every key idle for at least ``timeout_s`` at ``now``, soonest
        first. With ``last_active``, a key active since its deadline was set gets a new one."""
        out: list[K] = []
        heap, deadlines, timeout_s = self._heap, self._deadlines, self.timeout_s
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if deadlines.get(key) != deadline:
                continue  # a stale entry
            if last_active is not None:
                moved = last_active(key) + timeout_s
                if moved > now:
                    self._push(key, moved)
                    continue
            del deadlines[key]
            out.append(key)
        return out

    def _push(self, key: K, deadline: float) -> None:
        self._deadlines[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._order), key))
        self._compact_if_stale()

    def _compact_if_stale(self) -> None:
        if len(self._heap) > 2 * len(self._deadlines) + 64:
            order = self._order
            self._heap = [(d, next(order), k) for k, d in self._deadlines.items()]
            heapq.heapify(self._heap)
