"""Idle deadlines of every connection, in one structure (sans-IO, no clock).

Owns: when each tracked connection last completed a request, and which ones
have been idle for ``timeout_s``. Every connection has the same timeout, so
ordering them by last activity also orders their deadlines: an insertion-ordered
dict where ``touch`` moves a connection to the end keeps the earliest deadline
first, at O(1) per touch. The server arms one loop timer at ``next_deadline()``
(never one timer per connection) and calls ``expired(now)`` when it fires.
Must never: read the clock (every call takes ``now``) or close anything itself.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class IdleTracker(Generic[K]):
    __slots__ = ("_last_at", "timeout_s")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._last_at: dict[K, float] = {}  # oldest activity first

    def __len__(self) -> int:
        return len(self._last_at)

    def touch(self, key: K, now: float) -> None:
        """``key`` was active at ``now`` (a new key starts its idle time now)."""
        last_at = self._last_at
        last_at.pop(key, None)
        last_at[key] = now

    def forget(self, key: K) -> None:
        self._last_at.pop(key, None)

    def next_deadline(self) -> float | None:
        for last in self._last_at.values():
            return last + self.timeout_s
        return None

    def expired(self, now: float) -> list[K]:
        """Remove and return every key idle for at least ``timeout_s`` at ``now``."""
        out: list[K] = []
        last_at = self._last_at
        timeout_s = self.timeout_s
        for key, last in last_at.items():
            if last + timeout_s > now:  # the very sum next_deadline() returns
                break
            out.append(key)
        for key in out:
            del last_at[key]
        return out
