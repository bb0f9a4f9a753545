"""A leased message as the clients hand it out, bound to the connection that leased it.

Owns: the message's fields and its ``ack``/``nack``/``touch`` (``Message`` for
the asyncio client, ``SyncMessage`` for the blocking one), which go on the
connection holding the lease (only that connection may settle it). Must never:
retry, reconnect, or settle a message on another connection: if that
connection is gone, its leases are gone too, and saying so (``ConnectionLost``)
beats a misleading ``not_leased``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import commands
from .protocol import Reply, Request
from .results import WireMessage


class Caller(Protocol):
    """What a message needs from its connection: send one request, await its reply."""

    async def call(self, request: Request) -> Reply: ...

    def release(self, ids: list[str]) -> None: ...

    def clock(self) -> float: ...


class SyncCaller(Protocol):
    """What a blocking message needs from its connection."""

    def call(self, request: Request) -> Reply: ...

    def clock(self) -> float: ...


class BaseMessage:
    """The fields of a delivered message, shared by the asyncio and blocking clients.

    ``attempts`` counts this delivery (1 on the first). ``key`` is ``None`` for
    messages put without one. ``lease_s`` is the lease the GET asked for
    (``None``: the server's default), and ``expires_at`` when it ends, on the
    client's monotonic clock, as last known to this client (``None``: unknown).
    ``settled`` turns True once ``ack`` or ``nack`` was called, whatever its outcome.
    """

    __slots__ = ("attempts", "body", "expires_at", "id", "key", "lease_s", "queue", "settled")

    def __init__(
        self, wire: WireMessage, *, lease_s: float | None, expires_at: float | None
    ) -> None:
        self.id: str = wire.id
        self.queue: str = wire.queue
        self.body: Any = wire.body
        self.key: str | None = wire.key
        self.attempts: int = wire.attempts
        self.lease_s = lease_s
        self.expires_at = expires_at
        self.settled = False

    def __repr__(self) -> str:
        key = f", key={self.key!r}" if self.key is not None else ""
        body = repr(self.body)
        if len(body) > 60:
            body = body[:57] + "..."
        return (
            f"{type(self).__name__}(id={self.id!r}, queue={self.queue!r}{key}, "
            f"attempts={self.attempts}, body={body})"
        )


class Message(BaseMessage):
    """A message leased by ``AsyncClient.get`` (or yielded by ``consume``).

    Settle it with ``await msg.ack()`` when done, or ``await msg.nack()`` to
    give it back. Its lease belongs to the connection that leased it: if that
    connection is lost (even if the client then reconnects), the broker has
    released the message and these calls raise ``ConnectionLost``.
    """

    __slots__ = ("_conn", "_on_settled")

    def __init__(
        self, wire: WireMessage, conn: Caller, *, lease_s: float | None, expires_at: float | None
    ) -> None:
        super().__init__(wire, lease_s=lease_s, expires_at=expires_at)
        self._conn = conn
        self._on_settled: Callable[[Message], None] | None = None

    async def ack(self) -> None:
        """Delete the message: the work is done. Raises ``NotLeased`` if the lease was lost."""
        try:
            await self._conn.call(commands.ack(self.id))
        finally:
            self._settled()

    async def nack(self, delay: float | None = None) -> bool:
        """Give the message back, visible again now or after ``delay`` seconds.

        Returns True if it had used up its ``max_attempts`` and was moved to
        ``<queue>.dead`` instead.
        """
        try:
            return commands.parse_dead(await self._conn.call(commands.nack(self.id, delay)))
        finally:
            self._settled()

    async def touch(self, lease: float | None = None) -> None:
        """Extend the lease to ``lease`` seconds from now (``None``: the GET's lease)."""
        lease = self.lease_s if lease is None else lease
        sent_at = self._conn.clock()
        await self._conn.call(commands.touch(self.id, lease))
        if lease is not None:
            self.expires_at = sent_at + lease

    def _release(self) -> None:
        """NACK without waiting for the reply (for consumers that are stopping)."""
        if not self.settled:
            self._conn.release([self.id])
            self._settled()

    def _settled(self) -> None:
        self.settled = True
        callback, self._on_settled = self._on_settled, None
        if callback is not None:
            callback(self)


class SyncMessage(BaseMessage):
    """A message leased by the blocking ``Client.get``; settle it with ``ack()`` or ``nack()``.

    Its lease belongs to the connection that leased it; if that connection is
    lost, these calls raise ``ConnectionLost`` (the broker released it).
    """

    __slots__ = ("_conn",)

    def __init__(
        self,
        wire: WireMessage,
        conn: SyncCaller,
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
