"""A waiting GET: a consumer parked on a queue until a message is deliverable.

Owns: the record of one waiting GET, and the ``Lobby`` where waiting GETs on a
queue that does not exist wait by its name (a GET never creates a queue: a
lobby holds only its waiters, is made by the first and goes with the last,
and a queue made under that name takes them over, in their order), and
``OwnerWaits``: an owner's waiting GETs by the key a cancel names them by
(the GET's ``rid``), so a cancel finds its GETs in O(them). The
engine serves waiters of a queue in arrival order and reports each completed
wait as a ``Delivery``.
Must never: call back into the server; the engine only returns deliveries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from broker.engine.message import Message
    from broker.engine.queue import Queue

#: what the engine never looks into (a waiting GET's token and owner); ``Delivery``'s
#: fields say ``Opaque``, not ``object``: mypyc's dataclasses look annotations up in
#: the module, where ``object`` is not
Opaque = object


class Lobby:
    """Waiting GETs on the name of a queue that does not exist (yet), in arrival order."""

    __slots__ = ("n_waiting", "name", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.waiters: deque[Waiter] = deque()
        self.n_waiting = 0  # active waiters (ended ones leave the deque lazily)


class Waiter:
    __slots__ = (
        "active",
        "due_at",
        "key",
        "lease_s",
        "max",
        "owner",
        "queue",
        "receipts",
        "token",
    )

    def __init__(
        self,
        token: object,
        owner: object,
        queue: Queue | Lobby,
        max: int,
        lease_s: float,
        due_at: float,
        receipts: Callable[[], object] | None = None,
        key: Hashable = None,
    ) -> None:
        self.token = token  # opaque to the engine: the backend's handle for the reply
        self.key = key  # what a cancel names it by (the GET's rid), with its owner
        self.owner = owner
        self.queue = queue
        self.max = max
        self.lease_s = lease_s
        self.due_at = due_at
        self.receipts = receipts  # makes each message's lease owner (see Engine.get)
        self.active = True


class OwnerWaits:
    """One owner's waiting GETs, by the key a cancel names them by: ``n`` in all."""

    __slots__ = ("by_key", "n")

    def __init__(self) -> None:
        self.by_key: dict[Hashable, dict[Waiter, None]] = {}
        self.n = 0

    def add(self, waiter: Waiter) -> None:
        group = self.by_key.get(waiter.key)
        if group is None:
            group = self.by_key[waiter.key] = {}
        group[waiter] = None
        self.n += 1

    def discard(self, waiter: Waiter) -> None:
        group = self.by_key.get(waiter.key)
        if group is not None and waiter in group:
            del group[waiter]
            self.n -= 1
            if not group:
                del self.by_key[waiter.key]

    def all(self) -> list[Waiter]:
        """Every one of them, in no particular order (a copy: ending them changes this)."""
        return [w for group in self.by_key.values() for w in group]

    def keyed(self, key: Hashable) -> list[Waiter]:
        """Those a cancel of ``key`` names, in arrival order (a copy)."""
        return list(self.by_key.get(key, ()))


@dataclass(slots=True)
class Delivery:
    """A waiting GET completed: ``messages`` is empty when the wait timed out or was cut short."""

    token: Opaque
    owner: Opaque
    messages: list[Message] = field(default_factory=list)
