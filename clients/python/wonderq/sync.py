"""The blocking client, for scripts: the same methods as ``AsyncClient``, over a plain socket.

Owns: a blocking socket driven by the same ``ClientProtocol`` as the asyncio
client, one request at a time (a lock makes it safe to share between
threads), and ``SyncMessage``. Must never: start threads or an event loop,
retry a request, or block longer than the call's timeout.

What it does not do: touch leases in the background (there is no
background); handle each message within its lease, or call ``touch()``.
``run_worker`` is asyncio only.
"""

from __future__ import annotations

import contextlib
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Self

from . import commands
from .client import DEFAULT_HOST, DEFAULT_PORT, RECONNECT_FIRST_DELAY_S, RECONNECT_MAX_DELAY_S
from .errors import (
    ConnectionLost,
    ProtocolViolation,
    RequestTimeout,
    WonderQError,
    error_from_reply,
)
from .message import BaseMessage
from .protocol import DEFAULT_MAX_REPLY_LINE, ClientProtocol, Reply, Request, is_waiting_get
from .results import AckResult, MessageInfo, PeekResult, Stats, WireMessage
from .worker import MAX_GET

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
        """Connect; raise ``ConnectionLost`` if that fails or takes over ``connect_timeout``."""
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl is not None:
                sock = ssl.wrap_socket(sock, server_hostname=host)
        except OSError as exc:
            sock.close()
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        return cls(sock, request_timeout=request_timeout, max_line=max_line)

    @property
    def closed(self) -> bool:
        return self._lost_reason is not None

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
            raise error_from_reply(reply)
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
                data = self._sock.recv(RECV_SIZE)
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

    def _lose(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a recv blocked in another thread
            self._sock.close()


class SyncMessage(BaseMessage):
    """A message leased by ``Client.get``; settle it with ``ack()`` or ``nack()``.

    Its lease belongs to the connection that leased it; if that connection is
    lost, these calls raise ``ConnectionLost`` (the broker released it).
    """

    __slots__ = ("_conn",)

    def __init__(
        self,
        wire: WireMessage,
        conn: SyncConnection,
        *,
        lease_s: float | None,
        expires_at: float | None,
    ) -> None:
        super().__init__(wire, lease_s=lease_s, expires_at=expires_at)
        self._conn = conn

    def ack(self) -> None:
        """Delete the message: the work is done. Raises ``NotLeased`` if the lease was lost."""
        try:
            self._conn.call(commands.ack(self.id))
        finally:
            self.settled = True

    def nack(self, delay: float | None = None) -> bool:
        """Give the message back, now or after ``delay`` s; True if it went to ``<queue>.dead``."""
        try:
            return commands.parse_dead(self._conn.call(commands.nack(self.id, delay)))
        finally:
            self.settled = True

    def touch(self, lease: float | None = None) -> None:
        """Extend the lease to ``lease`` seconds from now (``None``: the GET's lease)."""
        lease = self.lease_s if lease is None else lease
        sent_at = self._conn.clock()
        self._conn.call(commands.touch(self.id, lease))
        if lease is not None:
            self.expires_at = sent_at + lease


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
    def connected(self) -> bool:
        """True while the client holds an open connection."""
        return self._conn is not None and not self._conn.closed

    def open(self) -> None:
        """Connect now (calls connect on demand anyway). Raises ``ConnectionLost`` on failure."""
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
        self, queue: str, *, concurrency: int = 1, lease: float = 30.0, wait: float = 20.0
    ) -> Iterator[SyncMessage]:
        """Yield messages of ``queue`` forever; you ``ack`` or ``nack`` each.

        Fetches up to ``concurrency`` messages at a time once the previous ones
        are settled. Leases are not touched for you: settle each message within
        ``lease`` seconds. Leaving the loop releases the messages it fetched
        and did not settle (deterministically with ``contextlib.closing``).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if wait <= 0:
            raise ValueError("wait must be greater than 0 seconds (a consumer long-polls)")
        return self._consume(queue, concurrency=concurrency, lease=lease, wait=wait)

    def _consume(
        self, queue: str, *, concurrency: int, lease: float, wait: float
    ) -> Iterator[SyncMessage]:
        fetched: list[SyncMessage] = []
        try:
            while True:  # each pass blocks in a long-poll GET
                fetched = [m for m in fetched if not m.settled]
                free = min(concurrency - len(fetched), MAX_GET)
                if free <= 0:
                    raise RuntimeError(
                        f"consume(concurrency={concurrency}): settle a message before taking the next"
                    )
                batch = self.get(queue, max=free, lease=lease, wait=wait)
                fetched.extend(batch)
                yield from batch
        finally:
            for message in fetched:
                if not message.settled:
                    with contextlib.suppress(WonderQError):  # lost: released with the connection
                        message.nack()

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

    def _connection(self) -> SyncConnection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        with self._dialing:
            if self._closed:
                raise ConnectionLost("the client is closed")
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            if conn is not None and not self._reconnect:
                raise ConnectionLost("the connection was lost and reconnect=False")
            conn = self._redial() if self._reconnect else self._dial()
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

    def _redial(self) -> SyncConnection:
        give_up_at = time.monotonic() + self._reconnect_timeout
        delay = RECONNECT_FIRST_DELAY_S
        while True:
            try:
                return self._dial()
            except ConnectionLost as exc:
                if time.monotonic() + delay > give_up_at or self._closed:
                    raise ConnectionLost(
                        f"{exc.message} (gave up reconnecting after {self._reconnect_timeout:g} s)"
                    ) from exc
            time.sleep(delay)  # backoff between attempts, bounded by give_up_at
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)


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
