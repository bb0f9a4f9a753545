"""Per-queue settings: what CONFIG may change, and what a queue uses on its hot paths.

Owns: ``Settings``, a queue's overrides of the server's defaults (a field of
None is the server's setting), and ``effective``: the values a queue works
with, resolved once when they change (not on every PUT or GET): the lease of
a GET or TOUCH that names none, the ``max_attempts`` of a message put without
one, the most messages the queue may hold (None: no limit), its delivery rate
(None: no limit) and its dedup window.
Must never: read a clock, hold state of its own, or know the wire names
(the backend maps ``lease`` to ``lease_s`` and ``dedup_window`` to
``dedup_window_s``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Final, NamedTuple

from broker.config import Config


@dataclass(frozen=True, slots=True)
class Settings:
    """A queue's overrides: None is the server's default for that field."""

    lease_s: float | None = None
    max_attempts: int | None = None
    max_length: int | None = None
    rate: float | None = None  # deliveries per second (a token bucket, rate.py)
    dedup_window_s: float | None = None

    def changed(self, changes: dict[str, Any]) -> Settings:
        """These settings with ``changes`` applied (a value of None resets a field)."""
        return replace(self, **changes)

    def overrides(self) -> dict[str, Any]:
        """The fields that differ from the server's defaults, in field order."""
        return {f: getattr(self, f) for f in NAMES if getattr(self, f) is not None}


DEFAULT: Final = Settings()
NAMES: Final = tuple(f.name for f in fields(Settings))


class Effective(NamedTuple):
    """The values a queue works with: its overrides, else the server's settings."""

    lease_s: float
    max_attempts: int
    max_length: int | None  # None: no limit
    rate: float | None  # None: no limit
    dedup_window_s: float


def effective(settings: Settings, config: Config) -> Effective:
    def pick(mine: Any, server: Any) -> Any:
        return server if mine is None else mine

    return Effective(
        pick(settings.lease_s, config.lease_s),
        pick(settings.max_attempts, config.max_attempts),
        pick(settings.max_length, config.max_queue_length),
        settings.rate,
        pick(settings.dedup_window_s, config.dedup_window_s),
    )
