"""The asyncio shell around one ``ClientProtocol``: moves bytes, resolves futures, honours flow control.

Owns: one TCP (or TLS) connection, the futures of its pending calls, write
coalescing and write flow control. Must never: parse or build requests itself
(``protocol``/``commands`` do), retry or reconnect (``client`` decides), poll,
or leave a call pending once the connection is gone: every waiting call gets
``ConnectionLost``.

Calls are pipelined: ``call()`` queues its request and awaits its own future,
so many concurrent calls share the connection without waiting on each other's
round trips. Everything queued during one event-loop iteration goes out in
one ``transport.write``. While the transport is paused (its write buffer is
above the high-water mark), new calls wait before queueing.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from typing import cast

from .errors import (
    ConnectionLost,
    ProtocolViolation,
    RequestTimeout,
    ShuttingDown,
    WonderQError,
    connect_failed,
    error_from_reply,
)
from .protocol import DEFAULT_MAX_REPLY_LINE, ClientProtocol, Reply, Request

CLOSE_TIMEOUT_S = 5.0
"""How long ``close()`` waits for an orderly close before aborting the transport."""


class Connection(asyncio.Protocol):
    """One connection to a broker. Open it with ``await Connection.open(...)``."""

    def __init__(
        self, *, request_timeout: float | None, max_line: int = DEFAULT_MAX_REPLY_LINE
    ) -> None:
        self.request_timeout = request_timeout
        self._loop = asyncio.get_running_loop()
        self._core = ClientProtocol(max_line=max_line)
        self._transport: asyncio.Transport | None = None
        self._waiters: dict[int, asyncio.Future[Reply]] = {}
        self._lost_reason: str | None = None
        self._shutting_down = False  # the broker said so: no new call belongs on this connection
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._paused = False
        self._drain_waiters: deque[asyncio.Future[None]] = deque()
        self._flush_handle: asyncio.Handle | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
        max_line: int = DEFAULT_MAX_REPLY_LINE,
    ) -> Connection:
        """Connect; raise ``ConnectFailed`` if that fails or takes over ``connect_timeout``."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: cls(request_timeout=request_timeout, max_line=max_line),
                    host,
                    port,
                    ssl=ssl,
                )
        except OSError as exc:  # TimeoutError included
            raise connect_failed(host, port, exc, connect_timeout) from exc
        return conn

    @property
    def closed(self) -> bool:
        """True once the connection is lost or closed; calls then raise ``ConnectionLost``."""
        return self._lost_reason is not None

    @property
    def shutting_down(self) -> bool:
        """True once the broker answered ``shutting_down`` here: it will close the connection
        soon, and answers every later request the same (a client that reconnects makes its
        next call on a new connection, while calls made already get their replies)."""
        return self._shutting_down

    def clock(self) -> float:
        """The loop's monotonic clock, in seconds."""
        return self._loop.time()

    async def call(self, request: Request) -> Reply:
        """Send one request and return its success reply.

        Raises the wire error's class for a failure reply, ``ConnectionLost``
        if the connection goes before the reply comes, ``RequestTimeout`` if
        none comes within ``request_timeout`` (plus the request's ``wait``).
        """
        if self._paused and self._lost_reason is None:
            await self._drained()
        if self._lost_reason is not None:
            raise ConnectionLost(self._lost_reason)
        rid = self._core.send(request)
        waiter: asyncio.Future[Reply] = self._loop.create_future()
        self._waiters[rid] = waiter
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        limit = self.request_timeout
        if limit is not None and request.get("op") == "GET":
            limit += float(request.get("wait", 0))
        try:
            async with asyncio.timeout(limit):
                reply = await waiter
        except TimeoutError:
            self._abandon(rid, waiter)
            raise RequestTimeout(f"no reply to {request['op']} within {limit:g} s") from None
        except asyncio.CancelledError:
            self._abandon(rid, waiter)
            raise
        if not reply["ok"]:
            raise self._failure(reply)
        return reply

    def release(self, ids: list[str]) -> None:
        """Give leased messages back (``NACK``) without waiting for the replies.

        On a lost connection there is nothing to do: the server released them
        with it.
        """
        if self._lost_reason is not None or not ids:
            return
        self._core.release(ids)
        self._schedule_flush()

    async def close(self) -> None:
        """Close the connection (queued requests are still written); pending calls fail."""
        transport = self._transport
        if transport is None:
            return
        if not transport.is_closing():
            self._flush()
            self._lose("connection closed by the client")
            transport.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(self._closed)
        except TimeoutError:
            transport.abort()

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._core.receive_data(data)
        except ProtocolViolation as exc:
            self._lose(f"connection closed: the server broke the protocol ({exc.message})")
            if self._transport is not None:
                self._transport.abort()
            return
        for rid, reply in replies:
            waiter = self._waiters.pop(rid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
        self._schedule_flush()  # NACKs of messages that reached abandoned GETs

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        reason = "connection lost" + (f": {exc}" if exc is not None else " (closed by the server)")
        self._lose(reason)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain_waiters()

    # internals

    def _failure(self, reply: Reply) -> WonderQError:
        error = error_from_reply(reply)
        if isinstance(error, ShuttingDown):
            self._shutting_down = True
        return error

    def _flush(self) -> None:
        self._flush_handle = None
        data = self._core.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _schedule_flush(self) -> None:
        if self._core.wants_write and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _abandon(self, rid: int, waiter: asyncio.Future[Reply]) -> None:
        """The caller of ``rid`` gave up: cancel its GET, release what its reply leased."""
        self._waiters.pop(rid, None)
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            # the reply came, but the caller was cancelled before it could read it
            self._core.release_delivery(waiter.result())
        else:
            self._core.abandon(rid)
        if self._lost_reason is None:
            self._schedule_flush()

    async def _drained(self) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    def _wake_drain_waiters(self) -> None:
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _lose(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
        waiters = list(self._waiters.values())
        self._waiters.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionLost(self._lost_reason))
        self._wake_drain_waiters()
