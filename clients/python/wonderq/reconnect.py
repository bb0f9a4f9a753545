"""When to dial again after a lost or refused connection, when to give up, and what to log.

Owns: the reconnect schedule shared by both clients and their consumers
(exponential backoff between attempts, bounded in total time) and its log
lines, all at warning level: one per failed attempt, one per reconnect.
Must never: do IO, sleep or read a clock (the caller passes ``now``), or
retry a request: only dialing is retried.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol, TypeGuard, TypeVar

from .errors import ConnectFailed, WonderQError

logger = logging.getLogger("wonderq")

FIRST_DELAY_S: Final = 0.05
"""Wait before the second attempt (the first is at once); it doubles after each failure."""
MAX_DELAY_S: Final = 2.0
"""The longest wait between two attempts."""


class Dialed(Protocol):
    """What ``still_usable`` looks at on a connection (of either client)."""

    @property
    def closed(self) -> bool: ...

    @property
    def shutting_down(self) -> bool: ...


C = TypeVar("C", bound=Dialed)


def still_usable(conn: C | None, redial: Redial | None, reconnect: bool) -> TypeGuard[C]:
    """Whether the next call goes on ``conn``: it is open, and, if the broker said it is
    shutting down, nobody wants a new one (``reconnect`` off, no consumer's ``redial``)."""
    if conn is None or conn.closed:
        return False
    return not conn.shutting_down or (redial is None and not reconnect)


class Redial:
    """One outage (or a first connect that may retry): the attempts made, and their deadline.

    ``failed(exc, now)`` records a failed attempt and returns how long to wait
    before the next one, or raises ``ConnectFailed`` once the next attempt would
    start after ``give_up_at`` (``budget_s`` after the outage began).
    """

    def __init__(self, where: str, *, now: float, budget_s: float, first: bool = False) -> None:
        self.where = where
        self.budget_s = budget_s
        self.give_up_at = now + budget_s
        self.attempts = 0
        self._first = first
        self._delay_s = FIRST_DELAY_S

    def failed(self, exc: WonderQError, now: float) -> float:
        """Record a failed attempt; return the seconds to wait before the next one."""
        self.attempts += 1
        delay = self._delay_s
        if now + delay > self.give_up_at:
            raise ConnectFailed(
                f"{exc.message} (gave up reconnecting after {self.attempts} attempts in {self.budget_s:g} s)"
            ) from exc
        self._delay_s = min(delay * 2, MAX_DELAY_S)
        logger.warning(
            "%s %s: attempt %d failed (%s); trying again in %.2g s",
            "connecting to" if self._first else "reconnecting to",
            self.where,
            self.attempts,
            exc.message,
            delay,
        )
        return delay

    def succeeded(self) -> None:
        """Log the (re)connect, unless it was a first connect at the first attempt."""
        if self._first and self.attempts == 0:
            return
        logger.warning(
            "%s %s (attempt %d)",
            "connected to" if self._first else "reconnected to",
            self.where,
            self.attempts + 1,
        )
