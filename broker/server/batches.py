"""A connection's requests: run in batches, in turns, their replies written in order.

Owns: the part of a ``Connection`` between its framed lines and its transport.
The complete lines of one read are decoded and handed to the backend in batches
of at most ``BATCH_LINES`` lines and ``BATCH_BYTES`` of input (a longer line is
a batch alone); each batch's replies go out in one ``transport.write``, in
request order (a waiting GET's reply is written when the backend delivers it).
A read holding a single plain request (a client that waits for each reply)
takes ``_run_one``: the same steps without the batch's lists. Once the write
buffer is above its high-water mark, no further batch runs: lines already read
wait, framed, in ``_pending``. A batch whose replies come later (the backend
returned an awaitable) is a ``Flight``: when the backend says it is applied
already (``backend.base.applied``: a durable log's fsync is all it waits for),
the next batches run meanwhile, up to ``MAX_FLIGHTS`` in flight, so one fsync
covers a pipelining client's whole read; any other awaitable (a job that goes
on in slices) holds the rest back until it completes. Replies of later batches,
even those ready at once, are written after the earlier ones': in request
order. Lines that cannot run yet wait in ``_pending``. Before the backend sees a
request, the connection's ``AuthGate`` screens it (``AUTH`` never reaches a
backend), and nothing after a ``QUIT`` runs.

Connections take turns: once one has used ``TURN_S`` of the loop (between two
batches, or across reads), it stops reading, keeps what it read in ``_pending``
and goes on at the next turn of the loop (``call_soon``), after every other
connection ready now. A read of one short line (the hot path) is not timed: a
client that sends faster than its requests run has several lines in its next
read, which is timed, so untimed work stays one request a turn.
Must never: write a reply out of request order, or raise out of an asyncio callback.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Final, cast

from broker.backend.base import Backend, Replies, applied
from broker.errors import WonderQError
from broker.histogram import Histogram
from broker.protocol.codec import Invalid, decode
from broker.protocol.framing import Frame
from broker.protocol.replies import encode_reply, error_reply, reply_line, reply_lines
from broker.protocol.requests import Auth, Quit, Request
from broker.server.auth import Answered, AuthGate, AuthState, Item, decode_before_auth

if TYPE_CHECKING:
    from broker.server.connection import ConnectionHost

log = logging.getLogger("wonderq.connection")


#: Lines per backend batch: bounds the replies written past the high-water mark.
BATCH_LINES = 32
#: Input per batch once it holds more than a few lines (big lines make small batches).
BATCH_BYTES: Final = 64 * 1024
#: Batches of one connection whose replies may be owed at once (their backend applied
#: them; a durable log's fsync covers them all): a pipelining client's read of up to
#: this many batches waits for one fsync, not one each.
MAX_FLIGHTS: Final = 4
#: Loop time one connection may use before the others get a turn.
TURN_S: Final = 0.005

#: Items the fast path of a batch leaves to the slow one (the auth gate, QUIT, errors).
_SPECIAL: Final = frozenset({Invalid, Auth, Quit})


class Flight:
    """A batch whose replies are not written yet: its awaitable is pending, or it landed
    behind an earlier batch still in flight. ``opens``: later batches may run while it
    waits (it is applied already and in the fast path)."""

    __slots__ = ("future", "items", "opens", "plain", "replies", "started")

    def __init__(
        self,
        items: list[Item],
        plain: bool,
        started: float,
        future: asyncio.Future[Replies] | None,
        replies: Replies | None,
        opens: bool,
    ) -> None:
        self.items = items
        self.plain = plain
        self.opens = opens
        self.started = started
        self.future = future
        self.replies = replies


def _lines_within(frames: Sequence[Frame], size: int) -> int:
    """How many of the first ``frames`` hold at most ``size`` bytes in all (at least one)."""
    return max(1, bisect.bisect_right(list(itertools.accumulate(map(len, frames))), size))


class Batches:
    """The batch and turn half of ``Connection`` (which sets every attribute below)."""

    _server: ConnectionHost
    _backend: Backend
    _max_line: int
    _max_batch: int
    owner: object
    peer: str
    requests_served: int
    active_at: float
    _clock: Callable[[], float]
    _loop: asyncio.AbstractEventLoop | None
    _gate: AuthGate
    _paused_for_write: bool
    _flights: deque[Flight]
    _pending: list[Frame]
    _closing: bool
    _eof: bool
    _finishing: bool
    _used_s: float
    _yielding: bool
    _latency: Histogram | None

    if TYPE_CHECKING:  # the transport side, in connection.py and stopping.py

        def _update_reading(self) -> None: ...
        def _write(self, data: bytes) -> None: ...
        def close(self) -> None: ...
        def _half_close(self) -> None: ...

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
            if self._paused_for_write or self._yielding or not self._may_run():
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
            self._fly(result, [request], True, 0.0)
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
        if not isinstance(result, list):
            self._fly(result, items, plain, started)
        elif self._flights:  # earlier replies are still owed: these go after them
            self._flights.append(Flight(items, plain, started, None, result, plain))
        else:
            self._write_batch(items, result, plain)
            if self._latency is not None:
                self._latency.observe(perf_counter() - started)

    # ---------------------------------------------------------------- flights

    def _may_run(self) -> bool:
        """Whether the next batch may run while those in flight wait: only behind fewer
        than ``MAX_FLIGHTS`` batches that are applied already (their replies wait for a
        durable log's fsync, ``backend.base.applied``) and in the fast path (no QUIT, no
        AUTH); a job still running (a sliced PURGE, a remote store) holds the rest back."""
        flights = self._flights
        return not flights or (len(flights) < MAX_FLIGHTS and flights[-1].opens)

    def _fly(
        self, result: Awaitable[Replies], items: list[Item], plain: bool, started: float
    ) -> None:
        """Replies come later: a future (the durable backend's) is used as is, no task."""
        future = asyncio.ensure_future(result)
        flight = Flight(items, plain, started, future, None, plain and applied(result))
        self._flights.append(flight)
        future.add_done_callback(functools.partial(self._land, flight))

    def _land(self, flight: Flight, done: Awaitable[Replies]) -> None:
        """A batch's awaitable completed: its replies go out once every earlier batch's
        have, then what waited runs."""
        fut = cast("asyncio.Future[Replies]", done)
        if fut.cancelled():  # the connection was lost
            return
        exc = fut.exception()
        if exc is None:
            flight.replies = fut.result()
        elif isinstance(exc, WonderQError):
            n = sum(not isinstance(i, (Invalid, Answered)) for i in flight.items)
            flight.replies = [error_reply(exc)] * n
        else:
            log.error("batch failed on %s", self.peer, exc_info=exc)
            self.close()
            return
        flights = self._flights
        while flights and flights[0].replies is not None:
            landed = flights.popleft()
            assert landed.replies is not None
            self._write_batch(landed.items, landed.replies, landed.plain)
            if self._latency is not None:
                self._latency.observe(perf_counter() - landed.started)
        if flights and self._pending:  # runs now if the flights ahead let it
            self._run_pending()
        if flights:
            return
        self._run_pending()
        if self._finishing and not self._flights:
            self._half_close()
        elif self._eof and not self._flights and not self._pending:
            self.close()  # the peer sent EOF: its last replies are written

    def _write_batch(self, items: list[Item], replies: Replies, plain: bool) -> None:
        if not plain:
            self._write_mixed(items, replies)
            return
        # the fast path: one reply (or None: a waiting GET's comes later) per item,
        # none of them QUIT
        self._write(reply_lines(cast(list[Request], items), replies))

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
