"""Time: deadlines firing (lease expiry, end of a delay, end of a wait).

Owns: ``next_deadline`` (when the caller must next call ``advance``) and
``advance(now)``, which handles every due instant in turn, as if it had been
called at each: at one instant, leases expire and delays end (in queue
order) and rate limits get their token back, then waiters are served (tokens
counted at that instant), then the waits due then that got nothing end
empty. Lease expiries are counted per queue for the logs (``take_events``).
Must never: read a clock (``now`` is passed in), or handle an instant before
every earlier one is done.
"""

from __future__ import annotations

import math

from broker.engine.deadlines import Timed, is_live
from broker.engine.dispatch import Dispatch
from broker.engine.lifecycle import DELAY_END
from broker.engine.message import LEASED, READY, Message
from broker.engine.rate import Bucket
from broker.engine.state import GONE
from broker.engine.waiter import Waiter


class Expiry(Dispatch):
    def next_deadline(self) -> float | None:
        """When ``advance`` must next be called (None: nothing is timed)."""
        return self._deadlines.next_at()

    def advance(self, now: float) -> None:
        """Fire every deadline due at or before ``now``: lease expiry, delay end, wait end.

        Due instants are handled in turn, as if ``advance`` had been called at each,
        so a late call changes nothing but the start of the leases it grants.
        """
        pop = self._deadlines.pop_due
        while (first := pop(now)) is not None:
            # a live LeaseBatch's first member is leased until its entry's instant
            at = first[0].due_at if type(first) is list else first.due_at  # type: ignore[union-attr]
            due = [first]
            while (item := pop(at)) is not None:
                due.append(item)
            self._fire(at, due, now)
        self._settle(now)

    def _fire(self, at: float, due: list[Timed], now: float) -> None:
        """Everything due at the instant ``at`` happens at once: leases expire and
        delays end (in queue order), then waiters are served, then the waits due
        at ``at`` that got nothing end empty."""
        msgs: list[Message] = []
        for item in due:
            if type(item) is list:
                msgs.extend(item)  # members no longer due at ``at`` are skipped below
            elif isinstance(item, Message):
                msgs.append(item)
            elif isinstance(item, Bucket):  # a token is back: its queue's waiters are served
                item.due_at = math.nan
                self._wake(item.queue)
        msgs.sort(key=lambda m: m.order)
        for msg in msgs:
            if not is_live(msg, at):
                continue  # a second heap entry of a message already handled, or gone
            if msg.state == LEASED:
                self._count_event(msg.queue, "expired")
                self._release(msg, now, "expired", 0.0)
            else:
                self._delay_ended(msg)
        self._serve_woken(now, at)
        for waiter in due:
            if isinstance(waiter, Waiter) and waiter.active:
                self._end_empty(waiter)

    def _delay_ended(self, msg: Message) -> None:
        q = msg.queue
        q.delayed.discard(msg)
        msg.state = READY
        msg.due_at = GONE
        DELAY_END(self._tally, q, 1, 0)
        deliverable = msg.key is None or q.chain_is_head(msg)
        q.admit(msg, deliverable)
        if deliverable:
            self._wake(q)
