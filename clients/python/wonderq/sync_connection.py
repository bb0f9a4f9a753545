"""One blocking connection: a socket driven by the same ``ClientProtocol`` as the asyncio client.

Owns: the socket, one request at a time (a lock makes it safe to share between
threads), reading until the reply, and the hooks a stopping blocking consumer
uses to interrupt its own waiting GET (``in_recv``, ``before_blocking``,
``wakeup``).
Must never: start a thread, retry, or block longer than the call's timeout.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable

from .errors import (
    ConnectionLost,
    ProtocolViolation,
    RequestTimeout,
    ShuttingDown,
    connect_failed,
    error_from_reply,
)
from .protocol import DEFAULT_MAX_REPLY_LINE, ClientProtocol, Reply, Request, is_waiting_get

RECV_SIZE = 256 * 1024


class SyncConnection:
    """One blocking connection; ``call()`` sends a request and reads until its reply."""

    def __init__(
        self, sock: socket.socket, *, request_timeout: float | None, max_line: int
    ) -> None:
        self.request_timeout = request_timeout
        self._sock = sock
        self._core = ClientProtocol(max_line=max_line)
        self._lock = threading.Lock()
        self._lost_reason: str | None = None
        self._shutting_down = False  # the broker said so: no new call belongs on this connection
        self.in_recv = False
        """True only while a call is blocked reading the socket (what a signal may interrupt)."""
        self.before_blocking: Callable[[], None] | None = None
        """Called before each blocking read; it may raise to abandon the call (a stopping consumer)."""
        self.wakeup: socket.socket | None = None
        """A socket a signal writes to (``signals.wakeup``): a blocking read waits on it too,
        so a signal landing just before the read still ends it at once."""

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
        max_line: int = DEFAULT_MAX_REPLY_LINE,
    ) -> SyncConnection:
        """Connect; raise ``ConnectFailed`` if that fails or takes over ``connect_timeout``."""
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:  # TimeoutError included
            raise connect_failed(host, port, exc, connect_timeout) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl is not None:
                sock = ssl.wrap_socket(sock, server_hostname=host)
        except OSError as exc:
            sock.close()
            raise connect_failed(host, port, exc, connect_timeout) from exc
        return cls(sock, request_timeout=request_timeout, max_line=max_line)

    @property
    def closed(self) -> bool:
        return self._lost_reason is not None

    @property
    def shutting_down(self) -> bool:
        """True once the broker answered ``shutting_down`` here (see ``Connection``)."""
        return self._shutting_down

    def clock(self) -> float:
        return time.monotonic()

    def call(self, request: Request) -> Reply:
        """Send one request and return its success reply (see ``Connection.call``)."""
        with self._lock:
            if self._lost_reason is not None:
                raise ConnectionLost(self._lost_reason)
            rid = self._core.send(request)
            limit = self.request_timeout
            if limit is not None and is_waiting_get(request):
                limit += float(request["wait"])
            deadline = None if limit is None else time.monotonic() + limit
            try:
                self._send()
                reply = self._receive(rid, deadline)
            except RequestTimeout:
                self._core.abandon(rid)  # a waiting GET's CANCEL goes with the next request
                raise RequestTimeout(f"no reply to {request['op']} within {limit:g} s") from None
            except BaseException:  # e.g. KeyboardInterrupt: the same, so nothing stays leased
                self._core.abandon(rid)
                raise
        if not reply["ok"]:
            error = error_from_reply(reply)
            self._shutting_down = self._shutting_down or isinstance(error, ShuttingDown)
            raise error
        return reply

    def close(self) -> None:
        """Close the socket; a call blocked in another thread raises ``ConnectionLost``."""
        self._lose("connection closed by the client")

    def _send(self) -> None:
        data = self._core.data_to_send()
        if not data:
            return
        try:
            self._sock.settimeout(self.request_timeout)
            self._sock.sendall(data)
        except OSError as exc:
            self._lose(f"connection lost: {exc}")
            raise ConnectionLost(f"connection lost: {exc}") from exc

    def _receive(self, rid: int, deadline: float | None) -> Reply:
        while True:  # each pass blocks in recv until data, EOF or the deadline
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise RequestTimeout("timed out")
            try:
                self._sock.settimeout(remaining)
                # in_recv first, then the check: a signal between the two is then seen by
                # one of them (checked, then set, it fell between: the GET blocked 60 s)
                self.in_recv = True
                try:
                    if self.before_blocking is not None:
                        self.before_blocking()
                    if self.wakeup is not None:
                        self._wait_readable(self.wakeup, deadline)
                    data = self._sock.recv(RECV_SIZE)
                finally:
                    self.in_recv = False
            except TimeoutError:
                raise RequestTimeout("timed out") from None
            except OSError as exc:
                self._lose(f"connection lost: {exc}")
                raise ConnectionLost(f"connection lost: {exc}") from exc
            if not data:
                self._lose("connection lost (closed by the server)")
                raise ConnectionLost("connection lost (closed by the server)")
            try:
                replies = self._core.receive_data(data)
            except ProtocolViolation as exc:
                reason = f"connection closed: the server broke the protocol ({exc.message})"
                self._lose(reason)
                raise ConnectionLost(reason) from exc
            self._send()  # NACKs of late deliveries to abandoned GETs
            for reply_rid, reply in replies:
                if reply_rid == rid:
                    return reply

    def _wait_readable(self, wakeup: socket.socket, deadline: float | None) -> None:
        """Wait until the socket has data, or a signal arrives: its handler then runs and
        may raise to end the call (else this waits again); raise ``TimeoutError`` at the
        deadline."""
        if isinstance(self._sock, ssl_module.SSLSocket) and self._sock.pending():
            return  # decrypted bytes wait in the TLS layer, not in the socket
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        poller.register(wakeup, select.POLLIN)
        while True:  # each pass ends on data, a signal (its handler ran) or the deadline
            if deadline is None:
                events = poller.poll()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                events = poller.poll(remaining * 1000)
            if not events:
                raise TimeoutError
            if any(fd != wakeup.fileno() for fd, _ in events):
                return
            with contextlib.suppress(OSError):  # BlockingIOError once it is empty
                while wakeup.recv(4096):
                    pass

    def _lose(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a recv blocked in another thread
            self._sock.close()
