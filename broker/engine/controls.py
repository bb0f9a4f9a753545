"""Queue controls: CONFIG (a queue's settings), PAUSE and RESUME.

Owns: reading and changing a queue's settings (settings.py: a value sets a
field, None resets it to the server's default; a change creates the queue),
and pausing and resuming its deliveries. A paused queue keeps taking PUTs and
keeps its leases but delivers nothing; its waiting GETs are served once it
resumes, as are a rate-limited queue's when its rate changes (dispatch.py
gates both). Every change is reported to the journal as the queue's whole
settings and paused flag.
Must never: touch a message, or read a clock.
"""

from __future__ import annotations

from typing import Any

from broker.engine.management import Management
from broker.engine.queue import Queue
from broker.engine.settings import Effective, effective
from broker.errors import NotFound


class Controls(Management):
    def settings_of(self, queue_name: str) -> Effective:
        """The settings a queue works with (``NotFound`` if there is no such queue)."""
        q = self._queues.get(queue_name)
        if q is None:
            raise NotFound(f"no queue named {queue_name!r}")
        return effective(q.settings, self.config)

    def configure(self, now: float, queue_name: str, changes: dict[str, Any]) -> Effective:
        """Change some of a queue's settings (a value of None resets one to the server's
        default), creating the queue if needed; returns the settings it now works with.
        Without changes, only reads them (``settings_of``)."""
        if not changes:
            return self.settings_of(queue_name)
        q = self.create(queue_name)
        settings = q.settings.changed(changes)
        if settings != q.settings:
            self._apply(q, settings, now)
            self.journal.configure(q)
            self._wake(q)  # a faster rate, or none, may serve its waiters now
            self._settle(now)
        return effective(q.settings, self.config)

    def pause(self, now: float, queue_name: str) -> None:
        """Stop a queue's deliveries (creating it if needed); pausing again changes nothing."""
        q = self.create(queue_name)
        if not q.paused:
            self._set_paused(q, True)

    def resume(self, now: float, queue_name: str) -> None:
        """Deliver again: waiting GETs are served at once (``NotFound`` if no such queue)."""
        q = self._queues.get(queue_name)
        if q is None:
            raise NotFound(f"no queue named {queue_name!r}")
        if q.paused:
            self._set_paused(q, False)
            self._wake(q)
            self._settle(now)

    def _set_paused(self, q: Queue, paused: bool) -> None:
        q.paused = paused
        q.gated = paused or q.bucket is not None
        self.journal.configure(q)
