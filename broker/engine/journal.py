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
    from collections.abc import Sequence

    from broker.engine.message import Message
    from broker.engine.queue import Queue
    from broker.engine.values import Headers, NewMessageFields


class Journal(Protocol):
    def put(
        self,
        queue: Queue,
        first_seq: int,
        put_at: float,
        items: Sequence[NewMessageFields],
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        """New messages: ``items[i]`` got the id ``first_seq + i``, all put at ``put_at``.

        Each item is a ``NewMessage`` or a plain tuple of its five fields (body, key,
        delay_s, priority, max_attempts): read it by position, never by name.
        ``headers``, when given, holds each item's headers (None: none).

        Each is READY, or DELAYED until ``put_at + delay_s`` if ``delay_s`` > 0; a
        ``max_attempts`` of None is ``queue.max_attempts``. Plain messages have no
        ``Message`` object yet (see compact.py), so the put is reported as asked.
        """

    def remember(
        self, queue: Queue, put_at: float, window_s: float, pairs: Sequence[tuple[str, int]]
    ) -> None:
        """Dedup ids first used at ``put_at``: (dedup id, seq of the message it stored),
        remembered until ``put_at + window_s``. Reported after the ``put`` they stored."""

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

    def purge(self, queue: Queue, seqs: list[int]) -> None:
        """Messages of ``queue`` deleted by PURGE (a slice of them at a time, in the order
        it deleted them) or REMOVE (in turn)."""

    def configure(self, queue: Queue) -> None:
        """``queue.settings`` or ``queue.paused`` changed (both are reported as they are now)."""

    def drop(self, queue: Queue, seqs: list[int]) -> None:
        """``queue`` was deleted (DELETE) with its messages ``seqs``, its settings, its
        paused flag and its dedup ids."""


class NullJournal:
    """The in-memory journal: records nothing."""

    def put(
        self,
        queue: Queue,
        first_seq: int,
        put_at: float,
        items: Sequence[NewMessageFields],
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        pass

    def remember(
        self, queue: Queue, put_at: float, window_s: float, pairs: Sequence[tuple[str, int]]
    ) -> None:
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

    def purge(self, queue: Queue, seqs: list[int]) -> None:
        pass

    def configure(self, queue: Queue) -> None:
        pass

    def drop(self, queue: Queue, seqs: list[int]) -> None:
        pass
