"""Typed results of the operations (PUT, INFO, STATS, PEEK, CONFIG, batch ACK...) and envelopes.

Owns: the shapes protocol.md section 4 gives those replies, as immutable
msgspec structs. Must never: do IO, or carry behaviour beyond its fields.
Unknown reply fields are ignored, so a newer server does not break an older
client; a missing or mistyped field is a ``ProtocolViolation``.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    delay, a priority, ``max_attempts``, a ``dedup`` id or ``headers`` (a plain
    dict is always a body).
    """

    body: Any
    key: str | None = None
    delay: float | None = None
    priority: int | None = None
    max_attempts: int | None = None
    dedup: str | None = None
    headers: Mapping[str, str] | None = None


class PutResult(msgspec.Struct, frozen=True, kw_only=True):
    """``put_result``: the message's id, and whether the PUT was a duplicate.

    ``duplicate`` is True when the PUT's ``dedup`` id was used in the queue
    within its dedup window: nothing was stored, and ``id`` is the first message's.
    """

    id: str
    duplicate: bool = False


class PutManyResult(msgspec.Struct, frozen=True, kw_only=True):
    """``put_many_result``: the ids in order, and the indexes of the entries that were
    duplicates (nothing stored; their id is the first message's)."""

    ids: list[str]
    duplicates: list[int]


class MessageInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``INFO`` of one message. An acked message has only ``id``, ``queue`` and ``state``."""

    id: str
    queue: str
    state: MessageState
    attempts: int | None = None
    max_attempts: int | None = None
    priority: int | None = None
    key: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
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
    paused: bool = False
    settings: dict[str, float | int | None] = msgspec.field(default_factory=dict)
    """The queue's settings that differ from the server's defaults (see ``QueueSettings``)."""


class QueueSettings(msgspec.Struct, frozen=True, kw_only=True):
    """``config``: a queue's effective settings (``None``: no limit).

    ``lease``: seconds, the lease of a ``get`` that names none; ``max_attempts``:
    of messages put without one; ``max_length``: ready + delayed + leased
    messages it may hold; ``rate``: deliveries per second over all consumers;
    ``dedup_window``: seconds a ``dedup`` id is remembered.
    """

    lease: float
    max_attempts: int
    max_length: int | None
    rate: float | None
    dedup_window: float


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


class RemoveResult(msgspec.Struct, frozen=True, kw_only=True):
    """``remove``: how many were deleted; ids that were not, because they are leased (their
    holder may be working on them) or are not in the queue."""

    removed: int
    leased: list[str]
    not_found: list[str]


class RedriveResult(msgspec.Struct, frozen=True, kw_only=True):
    """``redrive``: how many moved back; with ``ids``, those that did not, because a consumer
    of the dead-letter queue holds them, or they are not in it."""

    redriven: int
    leased: list[str] = msgspec.field(default_factory=list)
    not_found: list[str] = msgspec.field(default_factory=list)


class WireMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a ``GET`` reply, before a client binds it to its connection."""

    id: str
    queue: str
    body: Any
    attempts: int
    key: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
