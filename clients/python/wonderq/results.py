"""Typed results of the read-only operations (INFO, STATS, batch ACK) and outgoing envelopes.

Owns: the shapes protocol.md section 4 gives those replies, as immutable
msgspec structs. Must never: do IO, or carry behaviour beyond its fields.
Unknown reply fields are ignored, so a newer server does not break an older
client; a missing or mistyped field is a ``ProtocolViolation``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class MessageState(StrEnum):
    """Where a message is in its lifecycle (``INFO``'s ``state``)."""

    READY = "ready"
    DELAYED = "delayed"
    LEASED = "leased"
    DEAD = "dead"
    ACKED = "acked"


class Envelope(msgspec.Struct, omit_defaults=True, frozen=True):
    """One message for ``put_many`` with its own options.

    ``put_many`` takes bodies; wrap a body in ``Envelope`` to give it a key, a
    delay, a priority or ``max_attempts`` (a plain dict is always a body).
    """

    body: Any
    key: str | None = None
    delay: float | None = None
    priority: int | None = None
    max_attempts: int | None = None


class MessageInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``INFO`` of one message. An acked message has only ``id``, ``queue`` and ``state``."""

    id: str
    queue: str
    state: MessageState
    attempts: int | None = None
    max_attempts: int | None = None
    priority: int | None = None
    key: str | None = None
    body: Any = None
    age: float | None = None
    lease_left: float | None = None
    delay_left: float | None = None
    holder: str | None = None
    """``PEEK`` only: the address of the connection holding the lease."""


class PeekResult(msgspec.Struct, frozen=True, kw_only=True):
    """``PEEK``: up to ``limit`` messages of a queue (never leased by looking), and how many
    the queue holds in the state asked for."""

    messages: list[MessageInfo]
    total: int


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one queue: current sizes, then totals since the server started."""

    ready: int
    delayed: int
    leased: int
    dead: int
    waiting_consumers: int
    bytes: int
    oldest_ready_age: float | None
    put: int
    acked: int
    nacked: int
    expired: int
    released_on_disconnect: int
    dead_lettered: int
    redriven: int
    purged: int


class ServerStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the whole server."""

    version: str
    uptime: float
    connections: int
    queues: int
    messages: int
    leased: int
    bytes: int


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """``STATS``: the server's counters and those of each listed queue."""

    server: ServerStats
    queues: dict[str, QueueStats]


class AckResult(msgspec.Struct, frozen=True, kw_only=True):
    """Batch ``ACK``: how many were acked, and which ids were not and why."""

    acked: int
    not_leased: list[str]
    not_found: list[str]


class WireMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a ``GET`` reply, before a client binds it to its connection."""

    id: str
    queue: str
    body: Any
    attempts: int
    key: str | None = None
