"""The values that cross the engine's boundary: what comes in and what goes out.

Owns: the shapes of a new message (``NewMessage``, or the plain tuple
``NewMessageFields``), of a message read back from a durable store
(``StoredMessage``), of a batch ACK's result (``AckResult``) and of what INFO
knows of a recently acked message (``AckedRecord``). The engine, its journal
and the backends all speak these, so they live apart from the engine itself.
Must never: hold behaviour or engine state (these are plain values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from broker.engine.queue import Queue


class NewMessage(NamedTuple):
    """One message a PUT asks for (already validated for type and bounds).

    A NamedTuple: immutable like a frozen dataclass, and several times cheaper to
    build, which a PUT does once per message.
    """

    body: bytes
    key: str | None = None
    delay_s: float = 0.0
    priority: int = 0
    max_attempts: int | None = None


#: ``NewMessage``'s fields as a plain tuple, which ``put`` takes too: a batch PUT
#: builds one per message, and a plain tuple costs a quarter of a NamedTuple call.
NewMessageFields = tuple[bytes, str | None, float, int, int | None]


class StoredMessage(Protocol):
    """A message as a durable store keeps it (see ``Engine.restore_messages``)."""

    seq: int
    queue: str
    body: bytes
    key: str | None
    priority: int
    max_attempts: int
    put_wall: float
    due_wall: float  # 0.0: not delayed
    attempts: int
    order: int  # 0: same as seq


@dataclass(slots=True)
class AckResult:
    acked: int
    not_leased: list[int]
    not_found: list[int]


@dataclass(frozen=True, slots=True)
class AckedRecord:
    """What INFO knows of a message acked recently."""

    seq: int
    queue: Queue
