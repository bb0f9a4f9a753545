"""The TCP server: listens, tracks connections, starts and stops the backend.

Owns: the listening socket, the set of live connections, graceful shutdown
(stop accepting; complete waiting GETs; flush and close every connection), the
process figures STATS reports (connections, RSS), one log line per connection
opened and closed, and the batch-latency histogram the connections fill when
metrics are on (``measure_latency=True``).
Must never: hold queue state (the backend does) or parse requests (the codec does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType

from broker.backend.base import Backend
from broker.backend.memory import MemoryBackend
from broker.config import Config
from broker.histogram import LATENCY_BOUNDS_S, Histogram
from broker.server.connection import Connection
from broker.server.process import rss_bytes

log = logging.getLogger("wonderq.server")

_CLOSE_TIMEOUT_S = 5.0


def first_seq_from_clock() -> int:
    """The first message sequence number of a run: wall-clock microseconds."""
    return time.time_ns() // 1000


class Server:
    def __init__(
        self,
        config: Config | None = None,
        backend: Backend | None = None,
        *,
        measure_latency: bool = False,
    ) -> None:
        self.config = config if config is not None else Config()
        self.backend: Backend = (
            backend
            if backend is not None
            else MemoryBackend(self.config, first_seq=first_seq_from_clock())
        )
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._stopped = asyncio.Event()
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

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.backend.start()
        self._server = await loop.create_server(
            lambda: Connection(self, self.backend),
            self.config.host,
            self.config.port,
            reuse_address=True,
            backlog=1024,
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

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
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
