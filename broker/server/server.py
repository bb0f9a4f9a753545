"""The TCP server: listens, tracks connections, starts and stops the backend.

Owns: the listening socket, the set of live connections, and graceful shutdown
(stop accepting; complete waiting GETs; flush and close every connection).
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
from broker.server.connection import Connection

log = logging.getLogger("wonderq.server")

_CLOSE_TIMEOUT_S = 5.0


def first_seq_from_clock() -> int:
    """The first message sequence number of a run: wall-clock microseconds."""
    return time.time_ns() // 1000


class Server:
    def __init__(self, config: Config | None = None, backend: Backend | None = None) -> None:
        self.config = config if config is not None else Config()
        self.backend: Backend = (
            backend
            if backend is not None
            else MemoryBackend(self.config, first_seq=first_seq_from_clock())
        )
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._stopped = asyncio.Event()
        self.backend.add_stats_provider(lambda: {"connections": len(self.connections)})

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
        log.debug("connection opened %s", conn.peer)

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        log.debug("connection closed %s (%d requests)", conn.peer, conn.requests_served)

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
