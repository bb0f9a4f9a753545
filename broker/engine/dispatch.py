"""Waiting GETs: parking them, serving them as messages become deliverable, ending them.

Owns: a GET that found nothing and may wait (a ``Waiter`` on its queue, or
on the lobby of a name with no queue, in arrival order, with a deadline), serving the waiters of every queue woken by
a call once all of that call's changes are applied (``_settle``), ending waits
(served, timed out, cancelled by the key it was parked with, owner gone,
queue deleted, shutdown), at most ``max-waiting`` per owner, and
handing completed waits out as ``Delivery``s (``take_deliveries``).
A waiting GET whose owner has no room for its reply (``set_room``: the
backend's connection is above its write high-water mark) is passed over and
keeps its place; the messages stay ready for other consumers.
Also a queue's gate (``_allowed``): a paused queue delivers nothing, and a
rate-limited one at most the whole tokens of its bucket (rate.py); when
waiters wait on a token, the bucket goes into the deadline heap at the
instant the next one comes back (``_arm_bucket``), and that deadline wakes
the queue. ``_settle`` also bounds the deadline heap and the compact index at
the end of every call.
Must never: call back into the server (it only returns deliveries), serve
a waiter in the middle of a call's changes, or poll a bucket.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from operator import attrgetter
from typing import Final

from broker.engine.compact import COLLECT_MIN
from broker.engine.deadlines import COMPACT_MIN
from broker.engine.leases import Leases
from broker.engine.message import Message, headers_bytes
from broker.engine.queue import Queue
from broker.engine.state import GONE
from broker.engine.waiter import Delivery, Lobby, OwnerWaits, Waiter
from broker.errors import BadRequest

#: what one message adds to a delivery's reply besides its body and headers: the id,
#: queue, attempts and key fields (a key is at most 256 characters)
REPLY_OVERHEAD: Final = 96


_BODY: Final = attrgetter("body")
_HEADERS: Final = attrgetter("headers")


def delivery_bytes(msgs: list[Message]) -> int:
    """About how big a reply carrying ``msgs`` is (bodies, headers, the fields). In C
    calls over the batch, not a Python step per message: a delivery to a waiting GET
    of 64 messages asks it each time."""
    size = sum(map(len, map(_BODY, msgs))) + REPLY_OVERHEAD * len(msgs)
    if any(map(_HEADERS, msgs)):  # (None, never empty, without headers)
        size += sum(map(headers_bytes, msgs))
    return size


class Dispatch(Leases):
    def _lobby(self, name: str) -> Lobby:
        """Where waiting GETs on ``name``, which has no queue, wait (made by the first)."""
        lobby = self._lobbies.get(name)
        if lobby is None:
            lobby = self._lobbies[name] = Lobby(name)
        return lobby

    def _park(
        self,
        q: Queue | Lobby,
        owner: object,
        max: int,
        lease_s: float,
        due_at: float,
        token: object,
        receipts: Callable[[], object] | None,
        key: Hashable = None,
    ) -> None:
        """Register a waiting GET on ``q`` (or the lobby of a name with no queue), until
        ``due_at`` (``key``: what a cancel names it by). The caller checked ``_may_wait``."""
        waiter = Waiter(token, owner, q, max, lease_s, due_at, receipts, key)
        q.waiters.append(waiter)
        q.n_waiting += 1
        self._tally.waiting += 1
        waits = self._owner_waiters.get(owner)
        if waits is None:
            waits = self._owner_waiters[owner] = OwnerWaits()
        waits.add(waiter)
        self._deadlines.push(due_at, waiter)

    def _may_wait(self, owner: object) -> None:
        """Refuse a waiting GET from an owner that has ``max-waiting`` already."""
        waits = self._owner_waiters.get(owner)
        limit = self.config.max_waiting
        if waits is not None and waits.n >= limit:
            raise BadRequest(
                f"this connection has {waits.n} waiting GETs; the limit (max-waiting) is "
                f"{limit}: CANCEL one, or wait for one to end"
            )

    def _serve_woken(self, now: float, at: float | None = None) -> None:
        """Serve the waiters of every woken queue (``at``: the instant whose deadlines
        woke them, for the rate limits' tokens; leases start at ``now``)."""
        woken, self._woken = self._woken, {}
        for q in woken:
            self._dispatch(q, now, now if at is None else at)

    def _settle(self, now: float) -> None:
        """End of a call that changed state: serve waiters, then bound the deadline heap
        and the compact index (their sizes are tested here: every call settles)."""
        if self._woken:
            self._serve_woken(now)
        deadlines = self._deadlines
        if len(deadlines.entries) > COMPACT_MIN or deadlines.old:
            deadlines.compact()
        if len(self._compact.firsts) > COLLECT_MIN:
            self._compact.collect()

    def _dispatch(self, q: Queue, now: float, at: float) -> None:
        """Serve waiting GETs of ``q`` in arrival order while messages are deliverable
        and its gate lets them go (tokens counted at ``at``). A waiter whose owner has
        no room (``set_room``) keeps its place and waits: the messages stay for others."""
        skipped: list[Waiter] = []
        rooms = self._room
        while q.n_waiting > len(skipped) and q.has_deliverable():
            n = None  # no gate: each waiter takes its max
            if q.gated:
                n = self._allowed(q, at)
                if not n:
                    self._arm_bucket(q)
                    break
            waiter = q.waiters.popleft()  # _end_wait may replace the deque: no alias
            if not waiter.active:
                continue
            room = rooms.get(waiter.owner) if rooms else None
            if room is not None and room <= 0:
                skipped.append(waiter)
                continue
            self._end_wait(waiter)
            if n is None:
                msgs = self._lease(
                    q, waiter.owner, waiter.max, waiter.lease_s, now, waiter.receipts
                )
            else:
                n = min(n, waiter.max)
                msgs = self._lease_gated(q, waiter.owner, n, waiter.lease_s, now, waiter.receipts)
            if room is not None:
                rooms[waiter.owner] = room - delivery_bytes(msgs)
            self._deliveries.append(Delivery(waiter.token, waiter.owner, msgs))
        if skipped:
            q.waiters.extendleft(reversed(skipped))

    def set_room(self, now: float, owner: object, room: int | None) -> None:
        """How many bytes of deliveries ``owner`` can take now (None: no limit; the
        backend says so as its connection's write buffer fills and drains). Each
        delivery to it takes ``delivery_bytes`` off; at 0 or less its waiting GETs are
        passed over (they keep their place) until room comes back."""
        had = self._room.get(owner)
        if room is None:
            self._room.pop(owner, None)
        else:
            self._room[owner] = room
        if had is not None and had <= 0 and (room is None or room > 0):
            waits = self._owner_waiters.get(owner)
            for waiter in waits.all() if waits is not None else ():
                if type(waiter.queue) is Queue:
                    self._wake(waiter.queue)
            self._settle(now)

    def _lease_gated(
        self,
        q: Queue,
        owner: object,
        max: int,
        lease_s: float,
        now: float,
        receipts: Callable[[], object] | None,
    ) -> list[Message]:
        """``_lease`` on a gated queue (``max`` within what ``_allowed`` said): each
        delivery takes a token of its rate limit."""
        msgs = self._lease(q, owner, max, lease_s, now, receipts)
        if q.bucket is not None:
            q.bucket.take(len(msgs))
        return msgs

    @staticmethod
    def _allowed(q: Queue, now: float) -> int:
        """How many messages a gated queue may deliver at ``now``: none while it is
        paused, else the whole tokens of its rate limit."""
        if q.paused:
            return 0
        assert q.bucket is not None, "a gated queue is paused or rate limited"
        return q.bucket.whole(now)

    def _arm_bucket(self, q: Queue) -> None:
        """Waiters of ``q`` wait on its next token: a deadline at the instant it comes
        back (once per instant; the bucket's ``whole`` was just asked)."""
        bucket = q.bucket
        if bucket is None or not bucket.wanted():
            return
        due = max(bucket.next_token_at(), math.nextafter(bucket.at, math.inf))
        if bucket.due_at != due:
            bucket.due_at = due
            self._deadlines.push(due, bucket)

    def _end_wait(self, waiter: Waiter) -> None:
        waiter.active = False
        waiter.due_at = GONE
        self._tally.waiting -= 1
        q = waiter.queue
        q.n_waiting -= 1
        mine = self._owner_waiters.get(waiter.owner)
        if mine is not None:
            mine.discard(waiter)
            if not mine.n:
                del self._owner_waiters[waiter.owner]
        if len(q.waiters) > 2 * q.n_waiting + 32:
            q.waiters = type(q.waiters)(w for w in q.waiters if w.active)
        if not q.n_waiting and type(q) is Lobby and self._lobbies.get(q.name) is q:
            del self._lobbies[q.name]  # its last waiter: a lobby holds active waiters only

    def _end_empty(self, waiter: Waiter) -> None:
        """End a wait that got nothing: its GET is answered with no messages."""
        self._end_wait(waiter)
        self._deliveries.append(Delivery(waiter.token, waiter.owner, []))

    def cancel_waits(self, owner: object, key: Hashable) -> int:
        """End the owner's waiting GETs parked with ``key`` (in O(them), whatever else
        it waits on); each yields an empty Delivery. How many ended."""
        waits = self._owner_waiters.get(owner)
        if waits is None:
            return 0
        ended = waits.keyed(key)
        for waiter in ended:
            self._end_empty(waiter)
        if len(self._deadlines.entries) > COMPACT_MIN:
            self._deadlines.compact()
        return len(ended)

    def end_all_waits(self) -> None:
        """Complete every waiting GET with no messages (server shutdown)."""
        for waits in list(self._owner_waiters.values()):
            for waiter in waits.all():
                self._end_empty(waiter)
        self._deadlines.compact()

    def has_deliveries(self) -> bool:
        """Whether ``take_deliveries`` has any to give."""
        return bool(self._deliveries)

    def take_deliveries(self) -> list[Delivery]:
        """Waiting GETs completed since the last call, in completion order."""
        out = self._deliveries
        if out:
            self._deliveries = []
        return out
