"""One client connection: bytes in, replies out, with flow control both ways.

Owns: moving bytes between a transport and the codec/backend. The complete
lines of one ``data_received`` are decoded and handed to the backend in batches
of at most ``BATCH_LINES``; each batch's replies go out in one
``transport.write``, in request order (a waiting GET's reply is written when the
backend delivers it). A read holding a single plain request (a client that waits
for each reply) takes ``_run_one``: the same steps without the batch's lists.
Once the transport's write buffer is above its high-water mark, no further
batch runs and reading pauses until it drains: lines already read wait, framed,
in ``_pending``. So a client that does not read its replies
cannot make the server buffer more than the high-water mark plus one batch of
replies, however small its requests and large their replies (STATS). While an
asynchronous batch is in flight, lines that arrive wait in ``_pending`` (replies
stay in order) and reading pauses until it completes; reading is not paused
before such lines arrive, since a durable batch usually completes (its fsync)
before the loop reads again, and a pause and resume cost two ``epoll_ctl``.
Before the backend sees a request, the connection's ``AuthGate`` screens it
(``AUTH`` never reaches a backend). A connection over the server's
``max-connections`` is refused in ``connection_made`` with one error line
(on a TLS port, ``tls.TlsListener`` refuses it before its handshake).

Input is bounded before it is trusted. Until the gate opens, a line may be at
most ``max_line_unauthenticated`` bytes: a longer one (complete, or still
arriving) is answered ``line_too_long`` without being decoded, counts as a
failed attempt, and the rest of it is discarded. The unfinished line a
connection holds counts against the server's budget for all of them
(``max-buffered``): a connection whose line would pass it is closed with one
``unavailable`` line, and what it held is given back.

Connections take turns: once one has used ``TURN_S`` of the loop (between two
batches, or across reads), it stops reading, keeps what it read in ``_pending``
and goes on at the next turn of the loop (``call_soon``), after every other
connection ready now. A batch holds at most ``BATCH_LINES`` lines and
``BATCH_BYTES`` of input (a longer line is a batch alone). A read of one short
line (the hot path: a client waiting for each reply) is not timed: a client
that sends faster than its requests run has several lines in its next read,
which is timed, so untimed work stays one request a turn.

A stop (``drain``, then ``finish``): the backend already refuses new work
(every request read from now on is answered ``shutting_down``); once the peer
has sent nothing for ``quiet_s`` and no reply is owed (no batch in flight),
the connection half-closes: its replies are flushed, then the write side is
shut down (EOF), and what the peer still sends is read and dropped until it
closes, so no reply is lost to a reset. ``finish`` half-closes without waiting
for quiet. A TLS transport cannot half-close: it closes once its replies are sent.

It knows its server only through ``ConnectionHost`` (what uvicorn hands its
protocols as ``ServerState``): no import of the server module.
Must never: touch queue state except through the backend, or raise out of an
asyncio callback.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic, perf_counter
from typing import Final, Protocol, cast

from broker.backend.base import Backend, Replies
from broker.config import Config
from broker.errors import Unauthorized, Unavailable, WonderQError
from broker.histogram import Histogram
from broker.protocol.codec import Invalid, decode
from broker.protocol.framing import TOO_LONG, Frame, LineFramer
from broker.protocol.replies import Reply, encode_reply, error_reply, reply_line, with_rid
from broker.protocol.requests import AnyRequest, Auth, Quit, Request
from broker.server.auth import Answered, AuthGate, AuthState, Item, decode_before_auth
from broker.server.sockets import tune
from broker.server.throttle import AuthThrottle, source_of

log = logging.getLogger("wonderq.connection")

_NEWLINE = b"\n"

#: Lines per backend batch: bounds the replies written past the high-water mark.
BATCH_LINES = 32
#: Input per batch once it holds more than a few lines (big lines make small batches).
BATCH_BYTES: Final = 64 * 1024
#: Loop time one connection may use before the others get a turn.
TURN_S: Final = 0.005


_OPEN: Final = AuthState.OPEN

#: Items the fast path of a batch leaves to the slow one (the auth gate, QUIT, errors).
_SPECIAL: Final = frozenset({Invalid, Auth, Quit})


def _lines_within(frames: Sequence[Frame], size: int) -> int:
    """How many of the first ``frames`` hold at most ``size`` bytes in all (at least one)."""
    return max(1, bisect.bisect_right(list(itertools.accumulate(map(len, frames))), size))


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


class Connection(asyncio.Protocol):
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
        self._busy: asyncio.Future[Replies] | None = None
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
        if self._busy is not None:
            self._busy.cancel()
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

    def resume_writing(self) -> None:
        self._paused_for_write = False
        self._run_pending()

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
        if self._pending or self._busy is not None or self._yielding:  # lines wait their turn
            self._pending.extend(frames)
            self._update_reading()
        elif len(frames) == 1 and not self._paused_for_write and len(frames[0]) < BATCH_BYTES:
            self._run_one(frames[0])  # one request, not timed (see the module docstring)
        else:
            started = perf_counter()
            self._process(frames, started)
            self._spend(started)
        if framer.buffered != self._held or self._gate.state is not _OPEN:
            self._bound_held()

    def eof_received(self) -> bool | None:
        if self._busy is not None or self._pending:
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

    # ------------------------------------------------------------------ turns

    def _spend(self, started: float) -> None:
        """Count the loop time used since ``started``; past this turn's share, yield."""
        self._used_s += perf_counter() - started
        if self._used_s > TURN_S and not self._yielding:
            self._yield_turn()

    def _yield_turn(self) -> None:
        """Stop reading until the next turn of the loop: every connection ready now goes first."""
        if self._closing or self._loop is None:
            return
        self._yielding = True
        self._loop.call_soon(self._end_turn)
        self._update_reading()

    def _end_turn(self) -> None:
        self._yielding = False
        self._used_s = 0.0
        if not self._closing:
            self._run_pending()

    # ---------------------------------------------------------------- batches

    def _process(self, frames: Sequence[Frame], started: float) -> None:
        """Run ``frames`` batch by batch while replies can be written and this turn lasts;
        keep the rest in ``_pending``. ``started``: when this turn's work began."""
        done = 0
        total = len(frames)
        while done < total and not self._closing:
            if self._busy is not None or self._paused_for_write or self._yielding:
                self._pending.extend(frames[done:])
                break
            done = self._run_batch(frames, done)
            if done < total and self._used_s + perf_counter() - started > TURN_S:
                self._yield_turn()
        self._update_reading()

    def _run_pending(self) -> None:
        if not self._pending:
            self._update_reading()
            return
        pending, self._pending = self._pending, []
        started = perf_counter()
        self._process(pending, started)
        self._spend(started)

    def _run_one(self, frame: Frame) -> None:
        """A read that holds one line (a client waiting for each reply): the batch
        path without its lists, for a plain request on an open connection."""
        if self._gate.state is not AuthState.OPEN:
            self._process((frame,), perf_counter())
            return
        request = decode(frame, self._max_line, self._max_batch)
        if type(request) in _SPECIAL or self._latency is not None:
            started = perf_counter() if self._latency is not None else 0.0
            self._run_items([request], started)
            self._update_reading()
            return
        request = cast(Request, request)
        self.requests_served += 1
        self.active_at = self._clock()
        try:
            result = self._backend.execute(self.owner, (request,))
        except WonderQError as exc:  # the store is unavailable, say
            result = [error_reply(exc)]
        if not isinstance(result, list):
            self._await(result, [request], True, 0.0)
            return
        reply = result[0]
        if reply is not None:  # None: a waiting GET, delivered later
            self._write(reply_line(encode_reply(reply), request.rid))

    def _run_batch(self, frames: Sequence[Frame], start: int) -> int:
        """Run the batch of ``frames`` that begins at ``start``; where the next one begins."""
        started = perf_counter() if self._latency is not None else 0.0
        if self._gate.state is not AuthState.OPEN:
            limit = self._server.config.max_line_unauthenticated
            chunk = frames[start : start + BATCH_LINES]
            decoded = decode_before_auth(chunk, limit, self._max_line, self._max_batch)
            self._run_items(decoded, started)
            return start + len(decoded)
        chunk = frames[start : start + BATCH_LINES]
        if sum(map(len, chunk)) > BATCH_BYTES:
            chunk = chunk[: _lines_within(chunk, BATCH_BYTES)]
        max_line, max_batch = self._max_line, self._max_batch
        self._run_items([decode(f, max_line, max_batch) for f in chunk], started)
        return start + len(chunk)

    def _run_items(self, decoded: list[Request | Invalid], started: float) -> None:
        if self._gate.state is AuthState.OPEN and _SPECIAL.isdisjoint(map(type, decoded)):
            items: list[Item] = decoded  # type: ignore[assignment]  # the fast path
            requests = cast(list[Request], decoded)
            plain = True  # every item is a request, none of them QUIT
        else:
            plain = False
            now = self._loop.time() if self._loop is not None else 0.0
            items = self._gate.screen(decoded, now)
            for i, item in enumerate(items):
                if type(item) is Quit:  # nothing after QUIT runs: it would get no reply
                    del items[i + 1 :]
                    break
            requests = [i for i in items if not isinstance(i, (Invalid, Answered))]
        self.requests_served += len(items)
        self.active_at = self._clock()
        try:
            result = self._backend.execute(self.owner, requests) if requests else []
        except WonderQError as exc:  # the whole batch failed (e.g. store unavailable)
            result = [error_reply(exc)] * len(requests)
        if isinstance(result, list):
            self._write_batch(items, result, plain)
            if self._latency is not None:
                self._latency.observe(perf_counter() - started)
        else:
            self._await(result, items, plain, started)

    def _await(
        self, result: Awaitable[Replies], items: list[Item], plain: bool, started: float
    ) -> None:
        """Replies come later: a future (the durable backend's) is used as is, no task."""
        busy = self._busy = asyncio.ensure_future(result)
        busy.add_done_callback(functools.partial(self._finish_async, items, plain, started))

    def _finish_async(
        self, items: list[Item], plain: bool, started: float, done: Awaitable[Replies]
    ) -> None:
        """An asynchronous batch completed: write its replies, then run what waited."""
        self._busy = None
        fut = cast("asyncio.Future[Replies]", done)
        if fut.cancelled():  # the connection was lost
            return
        exc = fut.exception()
        if exc is None:
            replies = fut.result()
        elif isinstance(exc, WonderQError):
            n = sum(not isinstance(i, (Invalid, Answered)) for i in items)
            replies = [error_reply(exc)] * n
        else:
            log.error("batch failed on %s", self.peer, exc_info=exc)
            self.close()
            return
        self._write_batch(items, replies, plain)
        if self._latency is not None:
            self._latency.observe(perf_counter() - started)
        self._run_pending()
        if self._finishing and self._busy is None:
            self._half_close()
        elif self._eof and self._busy is None and not self._pending:
            self.close()  # the peer sent EOF: its last replies are written

    def _write_batch(self, items: list[Item], replies: Replies, plain: bool) -> None:
        if not plain:
            self._write_mixed(items, replies)
            return
        # the fast path: one reply (or None) per item, none of them QUIT
        out: list[bytes] = []
        append = out.append
        for item, reply in zip(items, replies, strict=True):
            if reply is None:
                continue  # a waiting GET: delivered later
            encoded = encode_reply(reply)
            rid = item.rid
            append(encoded if rid is None else with_rid(encoded, rid))
        if out:
            append(b"")  # the last line's newline
            self._write(_NEWLINE.join(out))

    def _write_mixed(self, items: list[Item], replies: Replies) -> None:
        out: list[bytes] = []
        quit_after = self._gate.state is AuthState.REFUSED
        it = iter(replies)
        for item in items:
            if isinstance(item, Invalid):
                out.append(reply_line(encode_reply(error_reply(item.error)), item.rid))
                continue
            if isinstance(item, Answered):
                out.append(reply_line(encode_reply(item.reply), item.rid))
                continue
            reply = next(it)
            if reply is None:
                continue  # a waiting GET: delivered later
            out.append(reply_line(encode_reply(reply), item.rid))
            if type(item) is Quit:
                quit_after = True
                break
        self._write(b"".join(out))
        if quit_after:
            self.close()

    def deliver(self, request: AnyRequest, reply: Reply) -> None:
        """The backend completed a waiting GET of this connection."""
        self._write(reply_line(encode_reply(reply), request.rid))

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

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
        if self._busy is None:
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

    def close(self) -> None:
        """Close after flushing what is already written."""
        self._closing = True
        if self.transport is not None:
            self.transport.close()
