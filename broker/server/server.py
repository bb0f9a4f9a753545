"""The TCP server: listens, tracks connections, starts and stops the backend.

Owns: the listening socket (plain TCP, or TLS with an ``ssl.SSLContext``), the
set of live connections, the idle timeout (one ``IdleTracker`` and one loop
timer for every connection), graceful shutdown (stop accepting; complete
waiting GETs; flush and close every connection), the process figures STATS
reports (connections, RSS), one log line per connection opened and closed, and
the batch-latency histogram the connections fill when metrics are on
(``measure_latency=True``).
Must never: hold queue state (the backend does) or parse requests (the codec does).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import time
from types import TracebackType

from broker.backend.base import Backend
from broker.backend.memory import MemoryBackend
from broker.config import Config
from broker.histogram import LATENCY_BOUNDS_S, Histogram
from broker.server.connection import Connection
from broker.server.idle import IdleTracker
from broker.server.process import rss_bytes

log = logging.getLogger("wonderq.server")

_CLOSE_TIMEOUT_S = 5.0
_TLS_HANDSHAKE_TIMEOUT_S = 10.0


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
        self._server: asyncio.Server | None = None
        self._stopped = asyncio.Event()
        self.refused = 0  # connections refused over max-connections, since start
        timeout_s = self.config.idle_timeout_s
        self._idle: IdleTracker[Connection] | None = (
            IdleTracker(timeout_s) if timeout_s is not None else None
        )
        self._idle_timer: asyncio.TimerHandle | None = None
        #: seconds from decoding a batch of requests to writing its replies (None: not measured)
        self.batch_latency: Histogram | None = (
            Histogram(LATENCY_BOUNDS_S) if measure_latency else None
        )
        self.backend.add_stats_provider(self._figures)

    def _figures(self) -> dict[str, int | None]:
        return {"connections": len(self.connections), "rss": rss_bytes()}

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        assert self._server is not None, "server not started"
        return str(self._server.sockets[0].getsockname()[0])

    @property
    def addresses(self) -> list[str]:
        """Every address listened on (an IPv4 and an IPv6 one for a host name)."""
        assert self._server is not None, "server not started"
        return [str(sock.getsockname()[0]) for sock in self._server.sockets]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.backend.start()
        self._server = await loop.create_server(
            lambda: Connection(self, self.backend),
            self.config.host,
            self.config.port,
            reuse_address=True,
            backlog=1024,
            ssl=self.ssl,
            ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT_S if self.ssl is not None else None,
        )
        log.info("listening on %s:%d", self.host, self.port)

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        log.info(
            "connection opened %s (%d open)",
            conn.peer,
            len(self.connections),
            extra={"event": "connection_opened", "peer": conn.peer},
        )
        self.connection_active(conn)

    def connection_refused(self, conn: Connection) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:  # a flood must not flood the log
            log.warning(
                "refused connection from %s: max-connections (%d) reached (%d refused so far)",
                conn.peer,
                self.config.max_connections,
                self.refused,
                extra={"event": "connection_refused", "peer": conn.peer, "refused": self.refused},
            )

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self._idle is not None:
            self._idle.forget(conn)
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

    # ------------------------------------------------------------ idle timeout

    def connection_active(self, conn: Connection) -> None:
        """``conn`` completed a request (or just opened): its idle time starts again."""
        idle = self._idle
        if idle is None or self._server is None:  # no timeout, or shutting down
            return
        loop = asyncio.get_running_loop()
        idle.touch(conn, loop.time())
        if self._idle_timer is None:
            self._arm_idle_timer(loop)

    def _arm_idle_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._idle is not None
        at = self._idle.next_deadline()
        self._idle_timer = None if at is None else loop.call_at(at, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        """Close connections idle for idle-timeout that hold no lease and no waiting GET.

        A connection that still holds work counts as active now (checked again later).
        Deadlines only move later, so a timer armed at the first one is never late.
        """
        assert self._idle is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in self._idle.expired(now):
            if conn.holds_work():
                self._idle.touch(conn, now)
            else:
                log.info("closing %s: idle for %g s", conn.peer, self._idle.timeout_s)
                conn.close()
        self._arm_idle_timer(loop)

    def request_stop(self) -> None:
        self._stopped.set()

    async def serve_until_stopped(self) -> None:
        await self._stopped.wait()
        await self.close()

    async def close(self) -> None:
        """Graceful shutdown: stop accepting, answer waiting GETs, flush, close."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        log.info(
            "shutting down: closing %d connection(s)",
            len(self.connections),
            extra={"event": "shutdown"},
        )
        await self.backend.stop()  # completes waiting GETs (empty replies)
        for conn in list(self.connections):
            conn.close()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await server.wait_closed()
        except TimeoutError:
            log.warning("connections still open after %.0f s; closing anyway", _CLOSE_TIMEOUT_S)
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
        log.info("stopped")

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
