"""The listening sockets of a TLS server: accept, count, refuse, then the handshake.

Owns: accepting TLS connections itself, because asyncio's own TLS accept starts
every handshake before anyone can count it, so stalled handshakes would hold
file descriptors past ``--max-connections`` unseen. Here a connection counts
from its accept: over the limit it is closed at once, before any handshake
(no error line: the client could not read one); otherwise the loop runs its
handshake (``connect_accepted_socket``) with a ``HANDSHAKE_S`` timeout, and
the server's ``Connection`` sees it only once the handshake is done. A
handshake under way counts in ``handshaking`` until it ends either way.
Accepting pauses for a second when accept fails (out of file descriptors, say).
Must never: read or write application bytes (the ``Connection`` does), or
close a socket it handed to the loop (the loop's transport owns it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Final, Protocol

from broker.server.sockets import tune

log = logging.getLogger("wonderq.tls")

#: a TLS handshake not done this long after the accept is dropped
HANDSHAKE_S: Final = 10.0
#: accepting waits this long after the process ran out of file descriptors
_RETRY_ACCEPT_S: Final = 1.0


class AcceptHost(Protocol):
    """What the listener needs of its server."""

    def connection_count(self) -> int:
        """Connections open now, handshakes under way included."""
        ...

    def connection_limit(self) -> int: ...

    def connection_refused(self, peer: str) -> None: ...


def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` (as ``loop.create_server`` binds)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class TlsListener:
    def __init__(
        self,
        host: AcceptHost,
        context: ssl.SSLContext,
        protocol_factory: Callable[[], asyncio.Protocol],
        sockets: list[socket.socket],
    ) -> None:
        self._host = host
        self._context = context
        self._factory = protocol_factory
        self.sockets = sockets
        self._handshakes: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None

    @property
    def handshaking(self) -> int:
        """TLS handshakes under way."""
        return len(self._handshakes)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _stop_accepting(self) -> None:
        if self._loop is not None:
            for sock in self.sockets:
                self._loop.remove_reader(sock.fileno())

    def close(self) -> None:
        """Stop accepting, close the listening sockets and drop every handshake under way."""
        self._stop_accepting()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.sockets:
            sock.close()
        for task in list(self._handshakes):
            task.cancel()  # the loop closes its socket

    async def wait_handshakes(self) -> None:
        """Return once every handshake dropped by ``close`` has ended."""
        if self._handshakes:
            await asyncio.wait(list(self._handshakes))

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(128):  # at most this many per wake-up: the loop has other work
            try:
                sock, address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of descriptors, say: accept again a little later
                log.error("cannot accept a TLS connection (%s); trying again in 1 s", exc)
                self._stop_accepting()
                assert self._loop is not None
                self._retry = self._loop.call_later(_RETRY_ACCEPT_S, self.start)
                return
            self._admit(sock, f"{address[0]}:{address[1]}")

    def _admit(self, sock: socket.socket, peer: str) -> None:
        host = self._host
        if host.connection_count() >= host.connection_limit():
            sock.close()  # before any handshake: it costs nothing more
            host.connection_refused(peer)
            return
        sock.setblocking(False)
        tune(sock)
        assert self._loop is not None
        task = self._loop.create_task(self._handshake(sock, peer))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, sock: socket.socket, peer: str) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(
                self._factory, sock, ssl=self._context, ssl_handshake_timeout=HANDSHAKE_S
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError and ConnectionError are OSErrors
            log.info("TLS handshake with %s failed: %s", peer, exc or type(exc).__name__)
