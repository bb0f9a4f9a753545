"""A waiting GET: a consumer parked on a queue until a message is deliverable.

Owns: the record of one waiting GET, and the ``Lobby`` where waiting GETs on a
queue that does not exist wait by its name (a GET never creates a queue: a
lobby holds only its waiters, is made by the first and goes with the last,
and a queue made under that name takes them over, in their order). The
engine serves waiters of a queue in arrival order and reports each completed
wait as a ``Delivery``.
Must never: call back into the server; the engine only returns deliveries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.engine.message import Message
    from broker.engine.queue import Queue


class Lobby:
    """Waiting GETs on the name of a queue that does not exist (yet), in arrival order."""

    __slots__ = ("n_waiting", "name", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.waiters: deque[Waiter] = deque()
        self.n_waiting = 0  # active waiters (ended ones leave the deque lazily)


class Waiter:
    __slots__ = ("active", "due_at", "lease_s", "max", "owner", "queue", "receipts", "token")

    def __init__(
        self,
        token: object,
        owner: object,
        queue: Queue | Lobby,
        max: int,
        lease_s: float,
        due_at: float,
        receipts: Callable[[], object] | None = None,
    ) -> None:
        self.token = token  # opaque to the engine: the backend's handle for the reply
        self.owner = owner
        self.queue = queue
        self.max = max
        self.lease_s = lease_s
        self.due_at = due_at
        self.receipts = receipts  # makes each message's lease owner (see Engine.get)
        self.active = True


@dataclass(slots=True)
class Delivery:
    """A waiting GET completed: ``messages`` is empty when the wait timed out or was cut short."""

    token: object
    owner: object
    messages: list[Message] = field(default_factory=list)
