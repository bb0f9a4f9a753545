"""Connection churn in the log: one info line a period, instead of one line per connection.

Owns: counting the connections opened and closed since the last report and
logging them in one ``info`` line (event ``connections``) at most once a
``period_s``, and once more when the server stops; the line per connection is
``debug``. A busy broker whose clients connect for each request would
otherwise write two lines per request at the default level.
Must never: arm a timer while nothing happens (one timer at most, armed by the
first connection after a report), or read the clock outside the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

log = logging.getLogger("wonderq.server")

#: a report covers at most this long
PERIOD_S: Final = 60.0


class ConnectionActivity:
    """``opened()``/``closed()`` per connection; the report says how many, and how many are open."""

    def __init__(self, open_now: Callable[[], int], period_s: float = PERIOD_S) -> None:
        self._open_now = open_now
        self._period_s = period_s
        self._opened = 0
        self._closed = 0
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def opened(self) -> None:
        self._opened += 1
        self._arm()

    def closed(self) -> None:
        self._closed += 1
        self._arm()

    def _arm(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._since = loop.time()
            self._timer = loop.call_later(self._period_s, self.report)

    def report(self) -> None:
        """Log what happened since the last report (nothing, if nothing did)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._opened or self._closed):
            return
        assert self._since is not None
        took = asyncio.get_running_loop().time() - self._since
        log.info(
            "connections: %d opened, %d closed in %.0f s; %d open",
            self._opened,
            self._closed,
            took,
            self._open_now(),
            extra={
                "event": "connections",
                "opened": self._opened,
                "closed": self._closed,
                "open": self._open_now(),
                "seconds": round(took, 3),
            },
        )
        self._opened = self._closed = 0
