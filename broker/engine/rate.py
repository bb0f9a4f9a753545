"""A queue's rate limit: a token bucket, and the instant its next token comes back.

Owns: ``Bucket``: it holds at most max(1, rate) tokens and starts full; tokens
come back at ``rate`` per second (fractional rates too: 0.5 is one every two
seconds), each delivery takes one, and a GET gets at most the whole tokens
there are. Refilling is computed from the instants it is asked at (``whole``),
never by a timer: when consumers wait and no whole token is left, the engine
puts the bucket itself in its one deadline heap at ``next_token_at`` (its
``due_at``), and that entry is live only while the queue still waits on it
(``wanted``). A token that is whole but for rounding (0.999999999...) counts
as whole, so a deadline computed for the instant a token comes back always
finds it there.
Must never: read a clock (instants are passed in), or choose which waiter is
served (dispatch.py does).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from broker.engine.queue import Queue

ROUNDING: Final = 1e-9  # of a token: what float arithmetic may lose over a refill


class Bucket:
    __slots__ = ("at", "capacity", "due_at", "queue", "rate", "tokens")

    def __init__(self, queue: Queue, rate: float, now: float) -> None:
        self.queue = queue
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity  # a new bucket starts full
        self.at = now  # the instant ``tokens`` was computed for
        self.due_at = math.nan  # the deadline entry wanted (nan: none)

    def whole(self, now: float) -> int:
        """The whole tokens there are at ``now`` (refilling up to the capacity)."""
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return int(self.tokens + ROUNDING)

    def take(self, n: int) -> None:
        """``n`` deliveries were made (at most ``whole`` of them)."""
        self.tokens -= n

    def next_token_at(self) -> float:
        """When the next whole token comes back (after ``whole`` said there was none)."""
        return self.at + (1.0 - self.tokens) / self.rate

    def resized(self, rate: float, now: float) -> Bucket:
        """This bucket at another rate: the tokens it has now, at most the new capacity."""
        self.whole(now)
        out = Bucket(self.queue, rate, now)
        out.tokens = min(out.capacity, self.tokens)
        return out

    def wanted(self) -> bool:
        """Whether its queue waits on its next token: consumers wait, a message could be
        delivered, the queue is not paused, and this is still the queue's bucket."""
        q = self.queue
        return bool(q.n_waiting) and not q.paused and q.bucket is self and q.has_deliverable()
