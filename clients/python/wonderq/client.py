"""The asyncio client: one pipelined connection per client, typed methods for every operation.

Owns: the public asyncio API, ``connect()``, when to (re)connect, and
authenticating each new connection. Must never: retry a request (a request in
flight when the connection drops may or may not have been applied, so the
caller decides), move bytes itself (``connection`` does), or hide a dropped lease.
"""

from __future__ import annotations

import asyncio
import signal
import ssl as ssl_module
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Final, Self

from . import commands
from .connection import Connection
from .errors import ConnectionLost
from .message import Message
from .protocol import DEFAULT_MAX_REPLY_LINE, Reply, Request
from .reconnect import Redial, still_usable
from .results import AckResult, MessageInfo, PeekResult, Stats
from .worker import DEFAULT_STOP_SIGNALS, Consumer, Handler, exponential_backoff, run_worker

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 7878


class AsyncClient:
    """An asyncio client of one WonderQ broker.

    One TCP connection carries every call: requests are pipelined and matched
    to replies by ``rid``, so concurrent calls do not wait on each other's
    round trips, and a waiting ``get`` never holds up an ``ack``.

    Use ``async with wonderq.connect(host, port) as client:`` (or
    ``client = await wonderq.connect(...)``, or ``async with AsyncClient(host,
    port) as client:``, which connects on entry).

    Failures: a failure reply raises the exception class of its wire code
    (all under ``WonderQError``); a call pending when the connection drops
    raises ``ConnectionLost`` (also a ``ConnectionError``); a connection that
    cannot be made raises ``ConnectFailed`` (a ``ConnectionLost``); no reply
    within ``request_timeout`` seconds (plus a ``get``'s ``wait``) raises
    ``RequestTimeout``; ``None`` waits forever.

    ``reconnect=True`` makes the next call after a lost connection reconnect
    (and the first connect retry), with exponential backoff for up to
    ``reconnect_timeout`` seconds, logging each attempt at warning level. The
    call that was in flight still raises ``ConnectionLost``; it is never
    retried for you. ``consume`` and ``run_worker`` reconnect whatever this
    says (their own ``reconnect``, on by default). A reconnect drops every
    lease: the broker releases the messages the old connection held, so their
    ``ack`` fails and they are delivered again.

    ``token``, if given, is sent with ``AUTH`` first on every (re)connect.
    ``ssl`` is an ``ssl.SSLContext`` for TLS.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        request_timeout: float | None = 30.0,
        connect_timeout: float | None = 10.0,
        reconnect: bool = False,
        reconnect_timeout: float = 30.0,
        max_line: int = DEFAULT_MAX_REPLY_LINE,
    ) -> None:
        self.host = host
        self.port = port
        self._token = token
        self._ssl = ssl
        self._timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._reconnect = reconnect
        self._reconnect_timeout = reconnect_timeout
        self._max_line = max_line
        self._conn: Connection | None = None
        self._dialing = asyncio.Lock()
        self._closed = False

    @property
    def reconnect(self) -> bool:
        """Whether a lost connection is re-established by the next call."""
        return self._reconnect

    @property
    def reconnect_timeout(self) -> float:
        """How long one reconnect keeps trying, in seconds, before it gives up."""
        return self._reconnect_timeout

    @property
    def connected(self) -> bool:
        """True while the client holds an open connection."""
        return self._conn is not None and not self._conn.closed

    async def open(self) -> None:
        """Connect now (calls connect on demand anyway). Raises ``ConnectFailed`` on failure."""
        await self._connection()

    async def close(self) -> None:
        """Close the connection; pending calls raise ``ConnectionLost``, leases are released."""
        self._closed = True
        if self._conn is not None:
            await self._conn.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # producing

    async def put(
        self,
        queue: str,
        body: Any,
        *,
        key: str | None = None,
        delay: float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> str:
        """Add one message; return its id.

        ``body`` is any JSON-encodable value. Messages with the same ``key``
        are handled one at a time, in order. ``delay`` (seconds) hides the
        message until then; lower ``priority`` is delivered first; after
        ``max_attempts`` deliveries it goes to ``<queue>.dead``.
        """
        request = commands.put(
            queue, body, key=key, delay=delay, priority=priority, max_attempts=max_attempts
        )
        return commands.parse_id(await self._call(request))

    async def put_many(self, queue: str, bodies: Iterable[Any]) -> list[str]:
        """Add messages all or nothing, in one request; return their ids in order.

        Each item is a body, or an ``Envelope(body, key=..., delay=...)`` for
        per-message options (a dict is always a body).
        """
        return commands.parse_ids(await self._call(commands.put_many(queue, bodies)))

    # consuming

    async def get(
        self, queue: str, *, max: int = 1, lease: float | None = None, wait: float = 0
    ) -> list[Message]:
        """Lease up to ``max`` messages, for ``lease`` seconds (``None``: the server's default).

        With ``wait`` > 0, waits up to that many seconds for a message if none
        is ready; returns ``[]`` if none came. Each message must be settled
        with ``ack()`` or ``nack()`` before its lease runs out.

        Cancelling a waiting ``get`` (e.g. its task, or a timeout around it)
        ends it on the server too (``CANCEL``); a message it got before that
        is released, so nothing stays leased to a call nobody awaits.
        """
        conn = await self._connection()
        sent_at = conn.clock()
        reply = await conn.call(commands.get(queue, max=max, lease=lease, wait=wait))
        leased_at = conn.clock() if wait else sent_at
        expires_at = None if lease is None else leased_at + lease
        return [
            Message(wire, conn, lease_s=lease, expires_at=expires_at)
            for wire in commands.parse_messages(reply)
        ]

    async def ack(self, id: str) -> None:
        """Delete a message this connection has leased (the work is done)."""
        await self._call(commands.ack(id))

    async def ack_many(self, ids: Iterable[str]) -> AckResult:
        """Ack many messages in one request; never fails for a single id."""
        return commands.parse_ack_many(await self._call(commands.ack_many(ids)))

    async def nack(self, id: str, delay: float | None = None) -> bool:
        """Release a leased message, now or after ``delay`` s; True if it went to ``<queue>.dead``."""
        return commands.parse_dead(await self._call(commands.nack(id, delay)))

    async def touch(self, id: str, lease: float | None = None) -> None:
        """Extend a lease to ``lease`` seconds from now (``None``: the server's default)."""
        await self._call(commands.touch(id, lease))

    def consume(
        self,
        queue: str,
        *,
        concurrency: int = 1,
        lease: float = 30.0,
        wait: float = 20.0,
        reconnect: bool = True,
        stop_signals: Iterable[signal.Signals] = DEFAULT_STOP_SIGNALS,
    ) -> AsyncGenerator[Message, None]:
        """Yield messages of ``queue`` as they come; you ``ack`` or ``nack`` each.

        Keeps up to ``concurrency`` messages leased and not yet settled: when
        all are taken, it waits for one to be settled before fetching more.
        Long-polls (``GET`` with ``wait``) while you work, and touches the lease
        of any message held longer than half of ``lease`` seconds.

        Stops (the loop ends) when one of ``stop_signals`` arrives (SIGINT,
        SIGTERM; taken over only if nothing else handles them): it takes no
        more messages and releases those fetched and not handed out; the
        message in hand is yours to settle. The same signal again then does
        what it does without a consumer (Ctrl-C: ``KeyboardInterrupt``).

        Leaving the loop releases every unsettled message. After ``break``,
        that happens when the generator is collected; for a deterministic
        release use ``async with contextlib.aclosing(client.consume(...)) as
        messages:``. A lost connection is re-established (``reconnect``, with
        backoff, for up to ``reconnect_timeout`` s, each attempt logged at
        warning level; with ``reconnect=False`` it raises ``ConnectionLost``):
        the leases it held are lost with it, so those messages' ``ack`` raises
        ``ConnectionLost`` and the broker delivers them again.
        """
        return _consume(
            Consumer(
                self,
                queue,
                concurrency=concurrency,
                lease=lease,
                wait=wait,
                reconnect=reconnect,
                stop_signals=stop_signals,
            )
        )

    async def run_worker(
        self,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 8,
        lease: float = 30.0,
        wait: float = 20.0,
        backoff: Callable[[int], float] = exponential_backoff,
        grace: float | None = 30.0,
        stop: asyncio.Event | None = None,
        stop_signals: Iterable[signal.Signals] = DEFAULT_STOP_SIGNALS,
        reconnect: bool = True,
    ) -> None:
        """Run ``await handler(message)`` on messages of ``queue``, up to ``concurrency`` at once.

        When the handler returns, the message is acked; when it raises, the
        message is nacked with a delay of ``backoff(message.attempts)`` seconds
        (1, 2, 4, ... by default), and after its ``max_attempts`` it goes to
        ``<queue>.dead``. Each failure is logged (logger ``wonderq``) with its
        traceback and what became of the message: retried in N s (warning), or
        moved to ``<queue>.dead`` on its last attempt (error). Leases of slow
        handlers are touched at half of ``lease``. A handler may settle its
        message itself.

        Stopping: when ``stop`` is set or one of ``stop_signals`` arrives
        (SIGINT and SIGTERM; taken over while this runs, if nothing else
        handles them), no more messages are fetched, the handlers in flight
        get ``grace`` seconds to finish (``None``: as long as they need; the
        same signal again: no more time), then the rest are cancelled, their
        messages released, and this returns. Cancelling it cancels the
        handlers at once and releases their messages. Nothing is lost either
        way, and nothing waits out the worker's long-poll: its waiting GET is
        cancelled (``CANCEL``) before the releases go out, so the broker cannot
        hand them straight back to it.

        A lost connection is re-established (``reconnect``, with backoff, for
        up to ``reconnect_timeout`` s per outage, each attempt logged at
        warning level; with ``reconnect=False`` this raises ``ConnectionLost``).
        The leases it held are lost with it: the broker delivers those
        messages again, and the ``ack`` of a handler still running on one fails
        (logged).
        """
        await run_worker(
            self,
            queue,
            handler,
            concurrency=concurrency,
            lease=lease,
            wait=wait,
            backoff=backoff,
            grace=grace,
            stop=stop,
            stop_signals=stop_signals,
            reconnect=reconnect,
        )

    # inspecting and managing

    async def info(self, id: str) -> MessageInfo:
        """Look at one message without changing it."""
        return commands.parse_info(await self._call(commands.info(id)))

    async def stats(self, queue: str | None = None) -> Stats:
        """Counters of the server, and of every queue (or just ``queue``)."""
        return commands.parse_stats(await self._call(commands.stats(queue)))

    async def peek(
        self, queue: str, *, state: str | None = None, limit: int | None = None
    ) -> PeekResult:
        """Look at up to ``limit`` messages of ``queue`` without leasing or changing them.

        ``state`` is ``"ready"``, ``"delayed"``, ``"leased"``, ``"dead"`` (the
        messages of ``<queue>.dead``) or ``None`` (every held message).
        """
        return commands.parse_peek(await self._call(commands.peek(queue, state=state, limit=limit)))

    async def queues(self) -> list[str]:
        """Names of all queues, sorted."""
        return commands.parse_queues(await self._call(commands.queues()))

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue``; return how many."""
        return commands.parse_count(await self._call(commands.purge(queue)), "purged")

    async def redrive(self, queue: str) -> int:
        """Move the messages of ``<queue>.dead`` back to ``queue``; return how many."""
        return commands.parse_count(await self._call(commands.redrive(queue)), "redriven")

    async def ping(self) -> None:
        """Round trip to the server."""
        await self._call(commands.ping())

    # internals

    async def _call(self, request: Request) -> Reply:
        return await (await self._connection()).call(request)

    async def _connection(self, redial: Redial | None = None) -> Connection:
        """The open connection; dial one if there is none and reconnecting is allowed.

        ``redial`` (from a consumer, which reconnects whatever ``reconnect``
        says) is the outage to count the attempts in. A connection on which the
        broker said it is shutting down is replaced too, when reconnecting.
        """
        conn = self._conn
        if conn is not None and not conn.closed and not conn.shutting_down:
            return conn
        async with self._dialing:
            if self._closed:
                raise ConnectionLost("the client is closed")
            conn = self._conn
            if still_usable(conn, redial, self._reconnect):
                return conn  # shutting down, without reconnecting: the broker's answer says so
            if redial is None and conn is not None and not self._reconnect:
                raise ConnectionLost("the connection was lost and reconnect=False")
            if redial is None and self._reconnect:
                now = asyncio.get_running_loop().time()
                redial = Redial(
                    self._where, now=now, budget_s=self._reconnect_timeout, first=conn is None
                )
            conn = await (self._dial() if redial is None else self._redial(redial))
            if self._closed:  # closed while dialing
                await conn.close()
                raise ConnectionLost("the client is closed")
            self._conn = conn
            return conn

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    async def _dial(self) -> Connection:
        conn = await Connection.open(
            self.host,
            self.port,
            ssl=self._ssl,
            request_timeout=self._timeout,
            connect_timeout=self._connect_timeout,
            max_line=self._max_line,
        )
        if self._token is not None:
            try:
                await conn.call(commands.auth(self._token))
            except BaseException:
                await conn.close()
                raise
        return conn

    async def _redial(self, redial: Redial) -> Connection:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn = await self._dial()
            except ConnectionLost as exc:
                if self._closed:
                    raise
                await asyncio.sleep(redial.failed(exc, loop.time()))  # raises when over budget
                continue
            redial.succeeded()
            return conn


async def _consume(consumer: Consumer) -> AsyncGenerator[Message, None]:
    try:
        async for message in consumer:
            yield message
    finally:
        await consumer.aclose()


def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    request_timeout: float | None = 30.0,
    connect_timeout: float | None = 10.0,
    reconnect: bool = False,
    reconnect_timeout: float = 30.0,
    max_line: int = DEFAULT_MAX_REPLY_LINE,
) -> Connecting:
    """Connect to a broker: ``async with connect(...) as client:`` or ``client = await connect(...)``.

    Either way the connection is made before the client is handed over; a
    refused one raises ``ConnectFailed`` (a ``ConnectionError``) saying so.
    ``async with`` closes the client at the end of the block; after ``await``,
    close it yourself (``async with await connect(...)`` does both).
    """
    return Connecting(
        AsyncClient(
            host,
            port,
            token=token,
            ssl=ssl,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            reconnect=reconnect,
            reconnect_timeout=reconnect_timeout,
            max_line=max_line,
        )
    )


class Connecting:
    """What ``connect()`` returns: await it for the connected client, or use it in ``async with``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __await__(self) -> Generator[Any, None, AsyncClient]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncClient:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.close()

    async def _open(self) -> AsyncClient:
        await self._client.open()
        return self._client
