"""A connection's part in a graceful stop: half-close once quiet, then drop what comes.

Owns: ``drain`` and ``finish`` of a ``Connection``. The backend already refuses
new work (every request read from now on is answered ``shutting_down``); once
the peer has sent nothing for ``quiet_s`` and no reply is owed (no batch in
flight), the connection half-closes: its replies are flushed, then the write
side is shut down (EOF), and what the peer still sends is read and dropped
until it closes, so no reply is lost to a reset. ``finish`` half-closes
without waiting for quiet. A TLS transport cannot half-close: it closes once
its replies are sent.
Must never: close before the replies owed are written, or raise out of an
asyncio callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized


class Stopping:
    """The stop half of ``Connection`` (which sets every attribute below)."""

    transport: asyncio.Transport | None
    _flights: Sized  # batches whose replies are owed (batches.py)
    _closing: bool
    _draining: bool
    _finishing: bool
    _quiet_s: float
    _last_input_at: float
    _quiet_timer: asyncio.TimerHandle | None

    # ------------------------------------------------------------------- stop

    def drain(self, quiet_s: float) -> None:
        """The server is stopping: half-close once the peer is quiet for ``quiet_s``
        and no reply is owed (the backend answers new requests ``shutting_down``)."""
        if self._draining or self._closing:
            return
        self._draining = True
        self._quiet_s = quiet_s
        loop = asyncio.get_running_loop()
        self._last_input_at = loop.time()
        self._quiet_timer = loop.call_at(self._last_input_at + quiet_s, self._quiet_check)

    def _quiet_check(self) -> None:
        self._quiet_timer = None
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        quiet_at = self._last_input_at + self._quiet_s
        if quiet_at > loop.time():  # the peer sent more since: look again once it is quiet
            self._quiet_timer = loop.call_at(quiet_at, self._quiet_check)
            return
        self.finish()

    def finish(self) -> None:
        """Half-close as soon as no reply is owed (now, or when the batch in flight ends)."""
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        self._finishing = True
        if not self._flights:
            self._half_close()

    def _half_close(self) -> None:
        """Flush the replies, then EOF; keep reading (and dropping) until the peer closes."""
        if self._closing:
            return
        self._closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():  # TLS: close_notify once the replies are sent
            transport.close()
            return
        transport.write_eof()
        if not transport.is_reading():
            transport.resume_reading()
