"""The TCP server: listens, tracks connections, starts and stops the backend.

Owns: the listening sockets (plain TCP, or TLS with an ``ssl.SSLContext``,
accepted by ``tls.TlsListener`` so that a handshake counts against
max-connections from the accept), the set of live connections, the idle
timeout and, with a token, the deadline to authenticate (each one
``IdleTracker`` and one loop timer for every connection, never a timer per
connection; a connection stamps its own last request, which the idle timer
reads only when a deadline comes), the failed-AUTH throttle every connection
shares, the budget of unfinished request lines over all connections
(``max-buffered``), the graceful stop (below), the process figures STATS
reports (connections, RSS), one log line per connection opened and closed, and
the batch-latency histogram the connections fill when metrics are on
(``measure_latency=True``).

The graceful stop (``close``), in this order, so that no reply answered ``ok``
is lost and nothing is applied after the store is closed:
  1. stop accepting;
  2. ``backend.drain()``: from now on every request is answered
     ``shutting_down`` and not applied; waiting GETs get their (empty) reply;
     replies held for an fsync go out;
  3. every connection half-closes once its peer is quiet (``QUIET_S``) and no
     reply is owed, or after ``DRAIN_MAX_S`` at the latest: replies flushed,
     then EOF, and the peer's further input dropped until it closes;
  4. connections still open ``CLOSE_S`` later are aborted;
  5. ``backend.stop()``: the leases the connections held are already released;
     the store writes out and fsyncs everything, and closes.
Front ends on the same backend (the HTTP API) follow the same steps: they
refuse new work from step 1 (``begin_stop``), their waiting requests are
answered by the drain, and they close (``close``) before step 5.
Must never: hold queue state (the backend does) or parse requests (the codec does).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Protocol

from broker.backend.base import Backend
from broker.backend.memory import MemoryBackend
from broker.config import Config
from broker.histogram import LATENCY_BOUNDS_S, Histogram
from broker.server.connection import Connection
from broker.server.idle import IdleTracker
from broker.server.process import give_back_memory, rss_bytes
from broker.server.throttle import AuthThrottle
from broker.server.tls import TlsListener, bind

log = logging.getLogger("wonderq.server")

#: a stop half-closes a connection once its peer has sent nothing for this long
QUIET_S: Final = 0.1
#: ... or this long after the stop began, however busy its peer
DRAIN_MAX_S: Final = 1.0
#: half-closed connections whose peer has not closed this much later are aborted
CLOSE_S: Final = 2.0
_BACKLOG: Final = 1024
#: once unfinished lines this big were freed, the heap's free memory goes back to the OS ...
TRIM_AFTER_BYTES: Final = 16 * 1024 * 1024
#: ... at most this often
TRIM_EVERY_S: Final = 1.0
#: With a token, a connection that has not authenticated this long after opening is closed.
AUTH_TIMEOUT_S: Final = 10.0


class _Sweep:
    """One ``IdleTracker`` and the one loop timer at its earliest deadline. With
    ``last_active``, a connection's deadline follows the activity it stamps itself."""

    __slots__ = ("_firing", "_last_active", "_on_expired", "_timer", "tracker")

    def __init__(
        self,
        timeout_s: float,
        on_expired: Callable[[Connection, float], None],
        last_active: Callable[[Connection], float] | None = None,
    ) -> None:
        self.tracker: IdleTracker[Connection] = IdleTracker(timeout_s)
        self._on_expired = on_expired
        self._last_active = last_active
        self._timer: asyncio.TimerHandle | None = None
        self._firing = False

    def touch(self, conn: Connection) -> None:
        """``conn`` starts its time now (it opened, or it holds work and is looked at later)."""
        loop = asyncio.get_running_loop()
        self.tracker.touch(conn, loop.time())
        if self._timer is None and not self._firing:
            self._arm(loop)

    def forget(self, conn: Connection) -> None:
        self.tracker.forget(conn)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        at = self.tracker.next_deadline()
        self._timer = None if at is None else loop.call_at(at, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new deadline is never earlier than those already set (each is ``timeout_s``
        after an instant already past), so a timer armed at the first is never late."""
        self._firing = True
        try:
            now = loop.time()
            for conn in self.tracker.expired(now, self._last_active):
                self._on_expired(conn, now)
        finally:
            self._firing = False
        self._arm(loop)


def _active_at(conn: Connection) -> float:
    """When ``conn`` last completed a request (it stamps each one; no call per request)."""
    return conn.active_at


class Frontend(Protocol):
    """Another way in to the same backend (the HTTP API), stopped with the server."""

    def begin_stop(self) -> None:
        """The stop began: refuse new work."""

    async def close(self) -> None:
        """Answer what is in flight and stop listening (before the backend stops)."""


def first_seq_from_clock() -> int:
    """The first message sequence number of a run: wall-clock microseconds."""
    return time.time_ns() // 1000


class Server:
    def __init__(
        self,
        config: Config | None = None,
        backend: Backend | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        measure_latency: bool = False,
    ) -> None:
        self.config = config if config is not None else Config()
        self.ssl = ssl
        self.backend: Backend = (
            backend
            if backend is not None
            else MemoryBackend(self.config, first_seq=first_seq_from_clock())
        )
        self.connections: set[Connection] = set()
        self._tls: TlsListener | None = None  # with ssl: accepts and counts handshakes
        self.buffered = 0  # bytes of unfinished request lines held by all connections
        self.buffer_refusals = 0  # connections closed over max-buffered, since start
        self._freed = 0  # bytes of unfinished lines freed since memory was last given back
        self._trim: asyncio.TimerHandle | None = None
        #: failed AUTHs per source address, across connections (with a token)
        self.auth_throttle = AuthThrottle() if self.config.token is not None else None
        self._server: asyncio.Server | None = None  # plain TCP
        self._listening = False
        self._stopped = asyncio.Event()
        self._stopping = False
        self._none_open = asyncio.Event()  # set while no connection is open
        self.refused = 0  # connections refused over max-connections, since start
        timeout_s = self.config.idle_timeout_s
        self._idle = _Sweep(timeout_s, self._idle_expired, _active_at) if timeout_s > 0 else None
        self._auth = (
            _Sweep(AUTH_TIMEOUT_S, self._auth_expired) if self.config.token is not None else None
        )
        #: seconds from decoding a batch of requests to writing its replies (None: not measured)
        self.batch_latency: Histogram | None = (
            Histogram(LATENCY_BOUNDS_S) if measure_latency else None
        )
        self.backend.add_stats_provider(self._figures)
        self._frontends: list[Frontend] = []

    def add_frontend(self, frontend: Frontend) -> None:
        """Stop ``frontend`` with this server (see the graceful stop above)."""
        self._frontends.append(frontend)

    def connection_count(self) -> int:
        handshaking = self._tls.handshaking if self._tls is not None else 0
        return len(self.connections) + handshaking

    def connection_limit(self) -> int:
        return self.config.max_connections

    def hold(self, delta: int) -> bool:
        """Count ``delta`` more bytes of unfinished lines; False (nothing counted) when
        a positive ``delta`` would pass max-buffered."""
        total = self.buffered + delta
        if delta > 0 and total > self.config.max_buffered:
            self.buffer_refusals += 1
            if self.buffer_refusals == 1 or self.buffer_refusals % 1000 == 0:
                log.warning(
                    "closing a connection: unfinished lines would pass max-buffered (%d bytes; "
                    "%d closed so far)",
                    self.config.max_buffered,
                    self.buffer_refusals,
                    extra={"event": "buffer_refused", "refused": self.buffer_refusals},
                )
            return False
        self.buffered = total
        if delta < 0:
            self._freed -= delta
            if self._freed >= TRIM_AFTER_BYTES and self._trim is None:
                self._trim = asyncio.get_running_loop().call_later(TRIM_EVERY_S, self._give_back)
        return True

    def _give_back(self) -> None:
        """Freed unfinished lines leave holes in the C heap: hand their pages back."""
        self._trim = None
        self._freed = 0
        give_back_memory()

    def _figures(self) -> dict[str, int | None]:
        return {"connections": len(self.connections), "rss": rss_bytes()}

    def _sockets(self) -> list[Any]:
        if self._tls is not None:
            return self._tls.sockets
        assert self._server is not None, "server not started"
        return list(self._server.sockets)

    @property
    def port(self) -> int:
        return int(self._sockets()[0].getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._sockets()[0].getsockname()[0])

    @property
    def addresses(self) -> list[str]:
        """Every address listened on (an IPv4 and an IPv6 one for a host name)."""
        return [str(sock.getsockname()[0]) for sock in self._sockets()]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.backend.start()
        if self.ssl is not None:
            sockets = bind(self.config.host, self.config.port, _BACKLOG)
            self._tls = TlsListener(self, self.ssl, self._new_connection, sockets)
            self._tls.start()
        else:
            self._server = await loop.create_server(
                self._new_connection,
                self.config.host,
                self.config.port,
                reuse_address=True,
                backlog=_BACKLOG,
            )
        self._listening = True
        log.info("listening on %s:%d", self.host, self.port)

    def _new_connection(self) -> Connection:
        return Connection(self, self.backend)

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._none_open.clear()
        if self._stopping:  # accepted just before the listener closed
            conn.drain(QUIET_S)
        log.info(
            "connection opened %s (%d open)",
            conn.peer,
            len(self.connections),
            extra={"event": "connection_opened", "peer": conn.peer},
        )
        if self._listening:  # not when shutting down
            for sweep in (self._idle, self._auth):
                if sweep is not None:
                    sweep.touch(conn)

    def connection_refused(self, peer: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:  # a flood must not flood the log
            log.warning(
                "refused connection from %s: max-connections (%d) reached (%d refused so far)",
                peer,
                self.config.max_connections,
                self.refused,
                extra={"event": "connection_refused", "peer": peer, "refused": self.refused},
            )

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._none_open.set()
        for sweep in (self._idle, self._auth):
            if sweep is not None:
                sweep.forget(conn)
        log.info(
            "connection closed %s after %d request(s) (%d open)",
            conn.peer,
            conn.requests_served,
            len(self.connections),
            extra={
                "event": "connection_closed",
                "peer": conn.peer,
                "requests": conn.requests_served,
            },
        )

    # ------------------------------------------------- idle and auth timeouts

    def _idle_expired(self, conn: Connection, now: float) -> None:
        """Idle for idle-timeout: close it, unless it holds a lease or a waiting GET."""
        assert self._idle is not None
        if conn.holds_work():
            self._idle.tracker.touch(conn, now)  # counts as active now; checked again later
        else:
            log.info("closing %s: idle for %g s", conn.peer, self._idle.tracker.timeout_s)
            conn.close()

    def _auth_expired(self, conn: Connection, now: float) -> None:
        if not conn.authenticated:
            log.info("closing %s: no AUTH within %g s", conn.peer, AUTH_TIMEOUT_S)
            conn.refuse(f"no AUTH within {AUTH_TIMEOUT_S:g} s of connecting")

    def request_stop(self) -> None:
        self._stopped.set()

    async def serve_until_stopped(self) -> None:
        await self._stopped.wait()
        await self.close()

    async def close(self) -> None:
        """The graceful stop (see the module docstring); returns once the store is closed."""
        if not self._listening:
            return
        self._listening = False
        self._stopping = True
        await self._stop_accepting()
        for frontend in self._frontends:
            frontend.begin_stop()
        self._cancel_timers()
        log.info(
            "shutting down: draining %d connection(s)",
            len(self.connections),
            extra={"event": "shutdown"},
        )
        await self.backend.drain()
        for conn in list(self.connections):
            conn.drain(QUIET_S)
        if not await self._all_closed_within(DRAIN_MAX_S):
            for conn in list(self.connections):
                conn.finish()
            if not await self._all_closed_within(CLOSE_S):
                log.warning(
                    "%d connection(s) still open %.0f s after their last reply; aborting them",
                    len(self.connections),
                    CLOSE_S,
                )
                for conn in list(self.connections):
                    if conn.transport is not None:
                        conn.transport.abort()
                await self._all_closed_within(CLOSE_S)  # connection_lost runs soon after abort
        for frontend in self._frontends:
            await frontend.close()
        await self.backend.stop()
        log.info("stopped")

    async def _stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._tls is not None:
            self._tls.close()  # handshakes under way are dropped: nothing is owed to them
            await self._tls.wait_handshakes()

    def _cancel_timers(self) -> None:
        for sweep in (self._idle, self._auth):
            if sweep is not None:
                sweep.cancel()
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None

    async def _all_closed_within(self, timeout_s: float) -> bool:
        if not self.connections:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._none_open.wait()
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
