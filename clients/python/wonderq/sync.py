"""The blocking client, for scripts: the same methods as ``AsyncClient``, over a plain socket.

Owns: the blocking API (``Client``, ``connect_sync``) over one
``SyncConnection`` (``sync_connection``), and when to (re)connect. Must never:
start threads or an event loop (except ``run_worker``, see ``sync_worker``),
retry a request, or block longer than the call's timeout.

What ``get`` and ``consume`` do not do: touch leases in the background (there
is no background); handle each message within its lease, or call ``touch()``.
``run_worker`` does touch them: it runs the asyncio worker on a loop of its own.
"""

from __future__ import annotations

import signal
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Self

from . import commands, sync_consumer, sync_worker
from .client import DEFAULT_HOST, DEFAULT_PORT, AsyncClient
from .errors import ConnectionLost
from .message import SyncMessage
from .protocol import DEFAULT_MAX_REPLY_LINE, Reply, Request
from .reconnect import Redial, still_usable
from .results import AckResult, MessageInfo, PeekResult, Stats
from .sync_connection import SyncConnection as SyncConnection  # re-exported: broker.cli uses it
from .sync_worker import SyncHandler
from .worker import DEFAULT_STOP_SIGNALS, exponential_backoff


class Client:
    """A blocking client of one WonderQ broker, with the methods of ``AsyncClient``.

    ``with wonderq.Client(host, port) as client:`` (connects on entry and on
    first use), or ``wonderq.connect_sync(host, port)``. The options mean what
    they mean for ``AsyncClient``, including that a reconnect drops every lease.
    Calls are serialised: one request at a time per client.
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
        self._conn: SyncConnection | None = None
        self._dialing = threading.Lock()
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

    def open(self) -> None:
        """Connect now (calls connect on demand anyway). Raises ``ConnectFailed`` on failure."""
        self._connection()

    def close(self) -> None:
        """Close the connection; its leases are released."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(
        self,
        queue: str,
        body: Any,
        *,
        key: str | None = None,
        delay: float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> str:
        """Add one message; return its id (see ``AsyncClient.put``)."""
        request = commands.put(
            queue, body, key=key, delay=delay, priority=priority, max_attempts=max_attempts
        )
        return commands.parse_id(self._call(request))

    def put_many(self, queue: str, bodies: Iterable[Any]) -> list[str]:
        """Add messages all or nothing; return their ids (see ``AsyncClient.put_many``)."""
        return commands.parse_ids(self._call(commands.put_many(queue, bodies)))

    def get(
        self, queue: str, *, max: int = 1, lease: float | None = None, wait: float = 0
    ) -> list[SyncMessage]:
        """Lease up to ``max`` messages (see ``AsyncClient.get``)."""
        conn = self._connection()
        sent_at = conn.clock()
        reply = conn.call(commands.get(queue, max=max, lease=lease, wait=wait))
        leased_at = conn.clock() if wait else sent_at
        expires_at = None if lease is None else leased_at + lease
        return [
            SyncMessage(wire, conn, lease_s=lease, expires_at=expires_at)
            for wire in commands.parse_messages(reply)
        ]

    def ack(self, id: str) -> None:
        """Delete a message this connection has leased."""
        self._call(commands.ack(id))

    def ack_many(self, ids: Iterable[str]) -> AckResult:
        """Ack many messages in one request; never fails for a single id."""
        return commands.parse_ack_many(self._call(commands.ack_many(ids)))

    def nack(self, id: str, delay: float | None = None) -> bool:
        """Release a leased message; True if it went to ``<queue>.dead``."""
        return commands.parse_dead(self._call(commands.nack(id, delay)))

    def touch(self, id: str, lease: float | None = None) -> None:
        """Extend a lease to ``lease`` seconds from now (``None``: the server's default)."""
        self._call(commands.touch(id, lease))

    def consume(
        self,
        queue: str,
        *,
        concurrency: int = 1,
        lease: float = 30.0,
        wait: float = 20.0,
        reconnect: bool = True,
        stop_signals: Iterable[signal.Signals] = DEFAULT_STOP_SIGNALS,
    ) -> Generator[SyncMessage, None, None]:
        """Yield messages of ``queue``; you ``ack`` or ``nack`` each (see ``AsyncClient.consume``).

        Fetches up to ``concurrency`` messages at a time once the previous ones
        are settled. Leases are not touched for you: settle each message within
        ``lease`` seconds. The first of ``stop_signals`` (in the main thread)
        ends the loop, interrupting a GET that waits; leaving the loop releases
        the messages it fetched and did not settle (deterministically with
        ``contextlib.closing``). A lost connection is re-established unless
        ``reconnect=False``.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if wait <= 0:
            raise ValueError("wait must be greater than 0 seconds (a consumer long-polls)")
        return sync_consumer.consume(
            self,
            queue,
            concurrency=concurrency,
            lease=lease,
            wait=wait,
            reconnect=reconnect,
            stop_signals=stop_signals,
        )

    def run_worker(
        self,
        queue: str,
        handler: SyncHandler,
        *,
        concurrency: int = 8,
        lease: float = 30.0,
        wait: float = 20.0,
        backoff: Callable[[int], float] = exponential_backoff,
        grace: float | None = 30.0,
        stop: threading.Event | None = None,
        stop_signals: Iterable[signal.Signals] = DEFAULT_STOP_SIGNALS,
        reconnect: bool = True,
    ) -> None:
        """Run ``handler(message)`` on messages of ``queue`` in up to ``concurrency`` threads.

        Does what ``AsyncClient.run_worker`` does (ack on return, NACK with
        backoff and a logged traceback on an exception, leases touched while
        handlers run, reconnects, stops on ``stop`` or SIGINT/SIGTERM), on a
        connection and an event loop of its own in this thread; blocks until
        stopped. Settle a message with its own methods (``message.ack()``):
        its lease belongs to the worker's connection, not this client's.
        ``stop`` may be set from any thread (it is checked every 0.1 s). A
        handler still running after ``grace`` cannot be interrupted (it is a
        thread): its message is released, and its late ``ack`` fails.
        """
        sync_worker.run_worker(
            self._async_twin,
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

    def info(self, id: str) -> MessageInfo:
        """Look at one message without changing it."""
        return commands.parse_info(self._call(commands.info(id)))

    def stats(self, queue: str | None = None) -> Stats:
        """Counters of the server, and of every queue (or just ``queue``)."""
        return commands.parse_stats(self._call(commands.stats(queue)))

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> PeekResult:
        """Look at up to ``limit`` messages of ``queue`` without leasing or changing them.

        ``state`` is ``"ready"``, ``"delayed"``, ``"leased"``, ``"dead"`` (the
        messages of ``<queue>.dead``) or ``None`` (every held message).
        """
        return commands.parse_peek(self._call(commands.peek(queue, state=state, limit=limit)))

    def queues(self) -> list[str]:
        """Names of all queues, sorted."""
        return commands.parse_queues(self._call(commands.queues()))

    def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue``; return how many."""
        return commands.parse_count(self._call(commands.purge(queue)), "purged")

    def redrive(self, queue: str) -> int:
        """Move the messages of ``<queue>.dead`` back to ``queue``; return how many."""
        return commands.parse_count(self._call(commands.redrive(queue)), "redriven")

    def ping(self) -> None:
        """Round trip to the server."""
        self._call(commands.ping())

    def _call(self, request: Request) -> Reply:
        return self._connection().call(request)

    def _connection(self, redial: Redial | None = None) -> SyncConnection:
        """The open connection; see ``AsyncClient._connection``."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.shutting_down:
            return conn
        with self._dialing:
            if self._closed:
                raise ConnectionLost("the client is closed")
            conn = self._conn
            if still_usable(conn, redial, self._reconnect):
                return conn
            if redial is None and conn is not None and not self._reconnect:
                raise ConnectionLost("the connection was lost and reconnect=False")
            if redial is None and self._reconnect:
                redial = Redial(
                    f"{self.host}:{self.port}",
                    now=time.monotonic(),
                    budget_s=self._reconnect_timeout,
                    first=conn is None,
                )
            conn = self._dial() if redial is None else self._redial(redial)
            if self._closed:  # closed while dialing
                conn.close()
                raise ConnectionLost("the client is closed")
            self._conn = conn
            return conn

    def _dial(self) -> SyncConnection:
        conn = SyncConnection.open(
            self.host,
            self.port,
            ssl=self._ssl,
            request_timeout=self._timeout,
            connect_timeout=self._connect_timeout,
            max_line=self._max_line,
        )
        if self._token is not None:
            try:
                conn.call(commands.auth(self._token))
            except BaseException:
                conn.close()
                raise
        return conn

    def _redial(self, redial: Redial) -> SyncConnection:
        while True:
            try:
                conn = self._dial()
            except ConnectionLost as exc:
                if self._closed:
                    raise
                time.sleep(redial.failed(exc, time.monotonic()))  # raises when over budget
                continue
            redial.succeeded()
            return conn

    def _async_twin(self) -> AsyncClient:
        """An asyncio client with this one's settings (not connected: it connects in its loop)."""
        return AsyncClient(
            self.host,
            self.port,
            token=self._token,
            ssl=self._ssl,
            request_timeout=self._timeout,
            connect_timeout=self._connect_timeout,
            reconnect=self._reconnect,
            reconnect_timeout=self._reconnect_timeout,
            max_line=self._max_line,
        )


def connect_sync(
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
) -> Client:
    """Connect to a broker and return the blocking client: ``with connect_sync(...) as c:``."""
    client = Client(
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
    client.open()
    return client
