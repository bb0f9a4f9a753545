"""One client connection: bytes in, replies out, with flow control both ways.

Owns: moving bytes between a transport and the codec/backend: framing what
it reads, its transport's flow control, bounding its input, and writing what
the backend delivers. How the requests of a read run (in batches, in turns)
is batches.py; its part in a graceful stop (``drain``, ``finish``) is
stopping.py. Once the transport's write buffer is above its high-water mark, no further
batch runs and reading pauses until it drains: lines already read wait, framed,
in ``_pending``. So a client that does not read its replies
cannot make the server buffer more than the high-water mark plus the replies of
the batches in flight (``MAX_FLIGHTS``, batches.py), however small its requests
and large their replies (STATS). While batches are in flight, reading pauses
once lines arrive that cannot run yet, not before, since a durable batch usually
completes (its fsync) before the loop reads again, and a pause and resume cost
two ``epoll_ctl``.
Before the backend sees a request, the connection's ``AuthGate`` screens it
(``AUTH`` never reaches a backend). A connection over the server's
``max-connections`` is refused in ``connection_made`` with one error line
(on a TLS port, ``tls.TlsListener`` refuses it before its handshake).

Input is bounded before it is trusted. Until the gate opens, a line may be at
most ``max_line_unauthenticated`` bytes: a longer one (complete, or still
arriving) is answered ``line_too_long`` without being decoded, and the
connection is closed (no client needs that much before AUTH: reading the rest
of the line would cost the server more than the peer). The unfinished line a
connection holds counts against the server's budget for all of them
(``max-buffered``): a connection whose line would pass it is closed with one
``unavailable`` line, and what it held is given back.

It knows its server only through ``ConnectionHost`` (what uvicorn hands its
protocols as ``ServerState``): no import of the server module.
Must never: touch queue state except through the backend, or raise out of an
asyncio callback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from time import monotonic, perf_counter
from typing import Final, Protocol, cast

from broker.backend.base import Backend
from broker.config import Config
from broker.errors import Unauthorized, Unavailable
from broker.histogram import Histogram
from broker.protocol.framing import TOO_LONG, Frame, LineFramer
from broker.protocol.replies import Reply, encode_reply, error_reply, reply_line
from broker.protocol.requests import AnyRequest
from broker.server.auth import AuthGate, AuthState
from broker.server.batches import BATCH_BYTES, BATCH_LINES, TURN_S, Batches, Flight
from broker.server.sockets import tune
from broker.server.stopping import Stopping
from broker.server.throttle import AuthThrottle, source_of

__all__ = ["BATCH_LINES", "TURN_S", "Connection", "ConnectionHost"]

_OPEN: Final = AuthState.OPEN


class ConnectionHost(Protocol):
    """What a connection needs of the server that accepted it, and nothing more."""

    config: Config
    #: seconds from decoding a batch to writing its replies (None: not measured)
    batch_latency: Histogram | None
    #: failed AUTHs per source address (None: no token)
    auth_throttle: AuthThrottle | None

    def connection_count(self) -> int:
        """Connections open now, TLS handshakes under way included (not refused ones)."""
        ...

    def hold(self, delta: int) -> bool:
        """Count ``delta`` more bytes of unfinished lines held; False (and nothing
        counted) when a positive ``delta`` would pass the server's budget."""
        ...

    def connection_opened(self, conn: Connection) -> None: ...

    def connection_refused(self, peer: str) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...


class Connection(Batches, Stopping, asyncio.Protocol):
    def __init__(self, server: ConnectionHost, backend: Backend) -> None:
        self._server = server
        self._backend = backend
        config = server.config
        self._framer = LineFramer(config.max_line)
        self._max_line = config.max_line
        self._max_batch = config.max_batch
        self._held = 0  # bytes of an unfinished line counted in the server's budget
        self.transport: asyncio.Transport | None = None
        self.owner: object = None
        self.peer = "?"
        self.requests_served = 0
        self._paused_for_write = False
        # batches whose replies are owed, in order (batches.py: up to MAX_FLIGHTS)
        self._flights: deque[Flight] = deque()
        # lines read but not run yet: while the write buffer is full or a batch is async
        self._pending: list[Frame] = []
        self._closing = False
        self._eof = False  # the peer half-closed while replies were still owed
        self._gate = AuthGate(config.token)  # given its throttle once the peer is known
        self.refused = False  # over max-connections: never opened with the backend
        self.opened = False  # known to the backend and the server (not refused)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = monotonic  # the loop's, once connected
        #: when this connection last completed a request (the loop's clock), for the idle timeout
        self.active_at = 0.0
        self._used_s = 0.0  # loop time used since this connection's last turn ended
        self._yielding = False  # waiting for its next turn (reading paused)
        self._latency = server.batch_latency  # None unless metrics are on
        # stopping (see the module docstring): drain() then finish()
        self._draining = False
        self._finishing = False
        self._quiet_s = 0.0
        self._last_input_at = 0.0
        self._quiet_timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------- asyncio hooks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._clock = self._loop.time
        self.active_at = self._clock()
        tune(transport.get_extra_info("socket"))
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        server = self._server
        config = server.config
        if config.token is not None:
            source = source_of(str(peer[0])) if peer else self.peer
            self._gate = AuthGate(config.token, throttle=server.auth_throttle, source=source)
        if server.connection_count() >= config.max_connections:
            self.refused = True
            self._closing = True
            refusal = Unavailable(
                f"too many connections: the limit (max-connections) is {config.max_connections}"
            )
            transport.write(reply_line(encode_reply(error_reply(refusal)), None))
            transport.close()
            server.connection_refused(self.peer)
            return
        transport.set_write_buffer_limits(high=config.write_high_water, low=config.write_low_water)
        self.owner = self._backend.open(self)
        self.opened = True
        server.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        self._server.hold(-self._held)  # its unfinished line is given back
        self._held = 0
        self._framer.drop_held()
        if not self.opened:  # refused over max-connections
            return
        for flight in self._flights:
            if flight.future is not None:
                flight.future.cancel()
        self._backend.close(self.owner)
        self._server.connection_closed(self)

    @property
    def authenticated(self) -> bool:
        return self._gate.state is AuthState.OPEN

    def refuse(self, why: str) -> None:
        """Close with one ``unauthorized`` line (its authentication deadline passed)."""
        self._write(reply_line(encode_reply(error_reply(Unauthorized(why))), None))
        self.close()

    def holds_work(self) -> bool:
        """True while this connection holds a lease or has a GET waiting."""
        return self._backend.holds(self.owner)

    def pause_writing(self) -> None:
        self._paused_for_write = True
        self._update_reading()
        if self.opened:
            self._backend.writable(self.owner)  # no room: its waiting GETs are passed over

    def resume_writing(self) -> None:
        self._paused_for_write = False
        if self.opened:
            self._backend.writable(self.owner)
        self._run_pending()

    def room(self) -> int:
        """Bytes of replies this connection can take before its write buffer passes the
        high-water mark (0 or less: none)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return 0
        return self._server.config.write_high_water - transport.get_write_buffer_size()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._paused_for_write or self._pending or self._yielding:
            if transport.is_reading():
                transport.pause_reading()
        elif not transport.is_reading():
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # closed, or half-closed by a stop: what the peer sends is dropped
        if self._draining:
            self._last_input_at = asyncio.get_running_loop().time()
        framer = self._framer
        frames = framer.feed(data)
        if self._pending or self._yielding or not self._may_run():  # lines wait their turn
            self._pending.extend(frames)
            self._update_reading()
        elif (
            len(frames) == 1
            and not self._flights
            and not self._paused_for_write
            and len(frames[0]) < BATCH_BYTES
        ):
            self._run_one(frames[0])  # one request, not timed (see the module docstring)
        else:
            started = perf_counter()
            self._process(frames, started)
            self._spend(started)
        if framer.buffered != self._held or self._gate.state is not _OPEN:
            self._bound_held()

    def eof_received(self) -> bool | None:
        if self._flights or self._pending:
            self._eof = True  # replies still to come (an async backend): close after them
            return True
        return False  # close our side too once replies are flushed

    # ------------------------------------------------------------ input bounds

    def _bound_held(self) -> None:
        """Bound the unfinished line: by the limit before AUTH, then by the server's budget."""
        if self._closing:
            return
        framer = self._framer
        locked = self._gate.state is not AuthState.OPEN and not self._pending
        if locked and framer.drop_held_over(self._server.config.max_line_unauthenticated):
            self._process((TOO_LONG,), perf_counter())  # a failed attempt
        held = framer.buffered
        if held == self._held or self._closing:
            return
        if self._server.hold(held - self._held):
            self._held = held
            return
        framer.drop_held()
        budget = self._server.config.max_buffered
        refusal = Unavailable(
            f"the server holds its limit (max-buffered) of {budget} bytes of unfinished "
            f"lines; this connection's line of {held} bytes does not fit: closing the connection"
        )
        self._write(reply_line(encode_reply(error_reply(refusal)), None))
        self.close()

    def deliver(self, request: AnyRequest, reply: Reply) -> None:
        """The backend completed a waiting GET of this connection."""
        self._write(reply_line(encode_reply(reply), request.rid))

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """Close after flushing what is already written."""
        self._closing = True
        if self.transport is not None:
            self.transport.close()
