"""The values that cross the engine's boundary: what comes in and what goes out.

Owns: the shapes of a new message (``NewMessage``, or the plain tuple
``NewMessageFields``; its ``Headers`` and dedup id travel beside it, so the
commonest PUT builds nothing more), of a message read back from a durable
store (``StoredMessage``), of a batch ACK's result (``AckResult``), of what
REMOVE and REDRIVE with ids did to each id (``Picked``) and of what INFO
knows of a recently acked message (``AckedRecord``). The engine, its journal
and the backends all speak these, so they live apart from the engine itself.
Must never: hold behaviour or engine state (these are plain values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol


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


#: a message's headers: string names to string values (None, never empty, when it has none)
Headers = dict[str, str]

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
    headers: Headers | None


@dataclass(slots=True)
class AckResult:
    acked: int
    not_leased: list[int]
    not_found: list[int]


@dataclass(slots=True)
class Picked:
    """What REMOVE or REDRIVE with ids did: how many moved, and the ids that did not
    (``leased``: its holder may be working on it; ``not_found``: not in that queue)."""

    done: int
    leased: list[int]
    not_found: list[int]


@dataclass(frozen=True, slots=True)
class AckedRecord:
    """What INFO knows of a message acked recently: its queue's name and the deliveries it
    took (the queue itself may be forgotten since)."""

    seq: int
    queue: str
    attempts: int
