"""A node's own deadlines: its waiting GETs' timeouts and its queue ticks.

Owns: one heap and one loop timer (never a timer per wait), with lazy
deletion: a wait's entry is live while the wait is still waiting with that
deadline; a queue's tick entry while it is still the earliest tick asked for
that queue. A *tick* is when a queue with waiting GETs on this node next needs
Redis to fire something (a delay ends, a lease runs out, a rate token comes
back); the library says when, in its replies and on the node's channel.
With a test clock (``loop_timers=False``) nothing is armed on the loop: the
test calls ``fire_due`` after moving its clock.
Must never: decide what a due item means (the backend's callbacks do).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from itertools import count
from typing import Any

from broker.protocol.requests import Get, Receive


class Wait:
    """One waiting GET of this node, known to Redis by ``wid``."""

    __slots__ = (
        "due_at",
        "owner",
        "queue",
        "receipts",
        "request",
        "since",
        "tag",
        "waiting",
        "wid",
    )

    def __init__(
        self, wid: str, owner: Any, request: Get | Receive, tag: str, since: float, due_at: float
    ) -> None:
        self.wid = wid
        self.owner = owner
        self.request = request
        self.tag = tag
        self.queue = request.queue
        self.since = since
        self.due_at = due_at
        self.waiting = True  # False once it got its reply (or is being ended)
        self.receipts = isinstance(request, Receive)  # an HTTP long poll: a receipt a message


class OwnerWaits:
    """One connection's waiting GETs on this node, by waiter id and by the GET's ``rid``
    (CANCEL finds its GETs in O(them), whatever else the connection waits on)."""

    __slots__ = ("_by_rid", "_by_wid")

    def __init__(self) -> None:
        self._by_wid: dict[str, Wait] = {}
        self._by_rid: dict[object, dict[str, Wait]] = {}

    def __len__(self) -> int:
        return len(self._by_wid)

    def __setitem__(self, wid: str, wait: Wait) -> None:
        self._by_wid[wid] = wait
        group = self._by_rid.get(wait.request.rid)
        if group is None:
            group = self._by_rid[wait.request.rid] = {}
        group[wid] = wait

    def pop(self, wid: str, default: None = None) -> Wait | None:
        wait = self._by_wid.pop(wid, None)
        if wait is not None:
            group = self._by_rid[wait.request.rid]
            del group[wid]
            if not group:
                del self._by_rid[wait.request.rid]
        return wait

    def values(self) -> list[Wait]:
        return list(self._by_wid.values())

    def with_rid(self, rid: object) -> list[Wait]:
        return list(self._by_rid.get(rid, {}).values())

    def clear(self) -> None:
        self._by_wid.clear()
        self._by_rid.clear()


TickKey = tuple[str, str]  # (tag, queue)


class Timers:
    def __init__(
        self,
        clock: Callable[[], float],
        loop_timers: bool,
        on_wait_due: Callable[[Wait], None],
        on_tick_due: Callable[[str, str], None],
    ) -> None:
        self._clock = clock
        self._loop_timers = loop_timers
        self._on_wait_due = on_wait_due
        self._on_tick_due = on_tick_due
        self._heap: list[tuple[float, int, Wait | TickKey]] = []
        self._n = count()
        self._ticks: dict[TickKey, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add_wait(self, wait: Wait) -> None:
        self._push(wait.due_at, wait)

    def add_tick(self, tag: str, queue: str, at: float) -> None:
        key = (tag, queue)
        known = self._ticks.get(key)
        if known is not None and known <= at:
            return
        self._ticks[key] = at
        self._push(at, key)

    def _push(self, at: float, item: Wait | TickKey) -> None:
        heapq.heappush(self._heap, (at, next(self._n), item))
        if len(self._heap) > 2 * (len(self._ticks) + 64) + 1024:
            self._heap = [e for e in self._heap if self._live(e)]
            heapq.heapify(self._heap)
        self._arm()

    def _live(self, entry: tuple[float, int, Wait | TickKey]) -> bool:
        at, _, item = entry
        if isinstance(item, Wait):
            return item.waiting and item.due_at == at
        return self._ticks.get(item) == at

    def _arm(self) -> None:
        if not self._loop_timers or not self._heap:
            return
        at = self._heap[0][0]
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.fire_due()

    def fire_due(self) -> None:
        now = self._clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            item = entry[2]
            if isinstance(item, Wait):
                self._on_wait_due(item)
            else:
                del self._ticks[item]
                self._on_tick_due(*item)
        self._arm()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._ticks.clear()
