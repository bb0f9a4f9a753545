"""The narrow interface through which every state change leaves the engine.

Owns: the list of state changes that matter for durability. The engine calls
exactly one of these methods for each change, after applying it, so a durable
log (or any other observer) sees every change in order. Changes that follow
from time alone are not reported: the end of a delay is implied by the
``due_at`` a ``put`` or ``release`` recorded, and lease expiry by the
``release`` it causes. ``NullJournal`` is the
in-memory default and does nothing.
Must never: raise back into the engine for a change that was already applied,
or call back into the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from broker.engine.message import Message
    from broker.engine.queue import Queue


class Journal(Protocol):
    def put(self, msgs: list[Message]) -> None:
        """New messages (state READY or DELAYED with ``due_at``)."""

    def lease(self, msgs: list[Message]) -> None:
        """Messages delivered: their ``attempts`` went up by one."""

    def ack(self, msg: Message) -> None:
        """A message was acked and deleted."""

    def release(self, msg: Message) -> None:
        """A leased message went back: READY, or DELAYED until ``due_at``."""

    def dead(self, msg: Message, source: Queue) -> None:
        """A message moved from ``source`` to its dead-letter queue ``msg.queue``."""

    def redrive(self, msgs: list[Message], source: Queue) -> None:
        """Messages moved from the dead-letter queue ``source`` back to ``msg.queue``."""

    def purge(self, msgs: list[Message]) -> None:
        """Messages deleted by PURGE."""


class NullJournal:
    """The in-memory journal: records nothing."""

    def put(self, msgs: list[Message]) -> None:
        pass

    def lease(self, msgs: list[Message]) -> None:
        pass

    def ack(self, msg: Message) -> None:
        pass

    def release(self, msg: Message) -> None:
        pass

    def dead(self, msg: Message, source: Queue) -> None:
        pass

    def redrive(self, msgs: list[Message], source: Queue) -> None:
        pass

    def purge(self, msgs: list[Message]) -> None:
        pass
