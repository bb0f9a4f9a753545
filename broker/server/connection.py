"""One client connection: bytes in, replies out, with flow control both ways.

Owns: moving bytes between a transport and the codec/backend. Every complete
line of one ``data_received`` is decoded and handed to the backend as one batch;
the batch's replies go out in one ``transport.write``, in request order (a
waiting GET's reply is written when the backend delivers it). Reading pauses
while the transport's write buffer is above its high-water mark (a client that
does not read its replies cannot make the server buffer without bound) and
while an asynchronous batch is in flight (replies stay in request order).
Must never: touch queue state except through the backend, or raise out of an
asyncio callback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, cast

from broker.backend.base import Backend, Replies
from broker.errors import WonderQError
from broker.protocol.codec import Invalid, Reply, decode, encode, error_reply
from broker.protocol.framing import LineFramer
from broker.protocol.requests import Quit, Request

if TYPE_CHECKING:
    from broker.server.server import Server

log = logging.getLogger("wonderq.connection")

_NEWLINE = b"\n"


def _with_rid(encoded: bytes, rid: str | int | None) -> bytes:
    if rid is None:
        return encoded + _NEWLINE
    return encoded[:-1] + b',"rid":' + encode(rid) + b"}\n"  # type: ignore[arg-type]


class Connection(asyncio.Protocol):
    def __init__(self, server: Server, backend: Backend) -> None:
        self._server = server
        self._backend = backend
        self._framer = LineFramer(server.config.max_line)
        self._max_line = server.config.max_line
        self.transport: asyncio.Transport | None = None
        self.owner: object = None
        self.peer = "?"
        self.requests_served = 0
        self._paused_for_write = False
        self._busy: asyncio.Task[None] | None = None
        self._backlog: list[bytes] = []  # data read while an async batch was in flight
        self._closing = False
        self._latency = server.batch_latency  # None unless metrics are on

    # ---------------------------------------------------------- asyncio hooks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        config = self._server.config
        transport.set_write_buffer_limits(high=config.write_high_water, low=config.write_low_water)
        self.owner = self._backend.open(self)
        self._server.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._busy is not None:
            self._busy.cancel()
        self._backend.close(self.owner)
        self._server.connection_closed(self)

    def pause_writing(self) -> None:
        self._paused_for_write = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_for_write = False
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._paused_for_write or self._busy is not None:
            if transport.is_reading():
                transport.pause_reading()
        elif not transport.is_reading():
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._busy is not None:  # already paused; a last chunk can still arrive
            self._backlog.append(data)
            return
        self._process(self._framer.feed(data))

    def eof_received(self) -> bool | None:
        return False  # close our side too once replies are flushed

    # ---------------------------------------------------------------- batches

    def _process(self, frames: Sequence[bytes | object]) -> None:
        if not frames or self._closing:
            return
        started = time.perf_counter() if self._latency is not None else 0.0
        max_line = self._max_line
        items: list[Request | Invalid] = [decode(f, max_line) for f in frames]  # type: ignore[arg-type]
        for i, item in enumerate(items):
            if type(item) is Quit:  # nothing after QUIT runs: it would get no reply
                del items[i + 1 :]
                break
        requests = [i for i in items if not isinstance(i, Invalid)]
        self.requests_served += len(items)
        try:
            result = self._backend.execute(self.owner, requests) if requests else []
        except WonderQError as exc:  # the whole batch failed (e.g. store unavailable)
            result = [error_reply(exc)] * len(requests)
        if isinstance(result, list):
            self._write_batch(items, result)
            if self._latency is not None:
                self._latency.observe(time.perf_counter() - started)
        else:
            self._busy = asyncio.ensure_future(self._finish_async(items, result, started))
            self._update_reading()

    async def _finish_async(
        self, items: list[Request | Invalid], pending: Awaitable[Replies], started: float
    ) -> None:
        try:
            try:
                replies = await pending
            except WonderQError as exc:
                replies = [error_reply(exc)] * sum(not isinstance(i, Invalid) for i in items)
            self._write_batch(items, replies)
            if self._latency is not None:
                self._latency.observe(time.perf_counter() - started)
        finally:
            self._busy = None
        backlog, self._backlog = self._backlog, []
        for data in backlog:
            if self._busy is not None:
                self._backlog.append(data)
            else:
                self._process(self._framer.feed(data))
        self._update_reading()

    def _write_batch(self, items: list[Request | Invalid], replies: Replies) -> None:
        out: list[bytes] = []
        quit_after = False
        it = iter(replies)
        for item in items:
            if isinstance(item, Invalid):
                out.append(_with_rid(encode(error_reply(item.error)), item.rid))
                continue
            reply = next(it)
            if reply is None:
                continue  # a waiting GET: delivered later
            out.append(_with_rid(encode(reply), item.rid))
            if type(item) is Quit:
                quit_after = True
                break
        self._write(b"".join(out))
        if quit_after:
            self.close()

    def deliver(self, request: Request, reply: Reply | bytes) -> None:
        """The backend completed a waiting GET of this connection."""
        self._write(_with_rid(encode(reply), request.rid))

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """Close after flushing what is already written."""
        self._closing = True
        if self.transport is not None:
            self.transport.close()
