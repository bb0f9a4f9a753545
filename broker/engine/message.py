"""A message record and its lifecycle states.

Owns: the per-message fields (compact, ``__slots__``; ``headers`` None when
there are none) and the ``State`` enum.
The moves between states, and the counters they keep, are the lifecycle
table (lifecycle.py); a delivery adds one attempt, and a release with
attempts >= max_attempts moves the message to ``<queue>.dead``.
A keyed message is deliverable only when it is READY and the head of its key chain.
Must never: hold references to connections other than the opaque owner token.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from broker.engine.queue import Queue


class State(IntEnum):
    READY = 0
    DELAYED = 1
    LEASED = 2


STATE_NAMES = {State.READY: "ready", State.DELAYED: "delayed", State.LEASED: "leased"}

# The members as plain module names, for the hot paths: reading ``State.READY``
# goes through the enum class and costs about ten times a global (Python 3.11).
READY: Final = State.READY
DELAYED: Final = State.DELAYED
LEASED: Final = State.LEASED


class Message:
    __slots__ = (
        "attempts",
        "body",
        "due_at",
        "headers",
        "key",
        "key_next",
        "max_attempts",
        "order",
        "owner",
        "priority",
        "put_at",
        "queue",
        "seq",
        "state",
    )

    def __init__(
        self,
        seq: int,
        queue: Queue,
        body: bytes,
        key: str | None,
        priority: int,
        max_attempts: int,
        put_at: float,
    ) -> None:
        self.seq = seq
        self.queue = queue
        self.body = body
        self.key = key
        self.priority = priority
        self.max_attempts = max_attempts
        self.put_at = put_at
        self.attempts = 0
        self.state = READY
        self.owner: object | None = None
        self.due_at = 0.0  # lease deadline (LEASED) or end of delay (DELAYED)
        self.order = seq  # place in the queue; a released message keeps it
        self.key_next: Message | None = None  # next message of the same key
        self.headers: dict[str, str] | None = None  # set after construction when it has some

    def __repr__(self) -> str:
        return (
            f"Message(seq={self.seq}, queue={self.queue.name!r}, state={self.state.name}, "
            f"key={self.key!r}, attempts={self.attempts})"
        )


def headers_bytes(msg: Message) -> int:
    """About what a message's headers take in a reply (0 without headers)."""
    headers = msg.headers
    if headers is None:
        return 0
    return sum(len(name) + len(value) + 6 for name, value in headers.items())
