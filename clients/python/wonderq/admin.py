"""The calls that inspect and manage queues, for both clients: ``AsyncAdmin`` and ``SyncAdmin``.

Owns: ``info``, ``stats``, ``peek``, ``queues``, ``purge``, ``redrive``,
``remove``, ``delete``, ``pause``, ``resume``, ``config`` and ``ping``, with the
same names, arguments and results on both (``AsyncClient`` and ``Client``
inherit them; a test compares their signatures). Each is one request
(``commands``) on the client's connection (its ``_call``).
Must never: hold state or retry; a call's failure is the broker's error, raised.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import commands
from .commands import KEEP, Keep
from .protocol import Reply, Request
from .results import MessageInfo, PeekResult, QueueSettings, RedriveResult, RemoveResult, Stats


class AsyncAdmin:
    """Inspecting and managing queues, on an asyncio client."""

    async def _call(self, request: Request) -> Reply:
        raise NotImplementedError  # AsyncClient sends it on its connection

    async def info(self, id: str) -> MessageInfo:
        """Look at one message without changing it."""
        return commands.parse_info(await self._call(commands.info(id)))

    async def stats(self, queue: str | None = None) -> Stats:
        """Counters of the server, and of every queue (or just ``queue``)."""
        return commands.parse_stats(await self._call(commands.stats(queue)))

    async def peek(
        self, queue: str, *, state: str | None = None, limit: int | None = None
    ) -> PeekResult:
        """Look at up to ``limit`` messages of ``queue`` without leasing or changing them.

        ``state`` is ``"ready"``, ``"delayed"``, ``"leased"``, ``"dead"`` (the
        messages of ``<queue>.dead``) or ``None`` (every held message).
        """
        return commands.parse_peek(await self._call(commands.peek(queue, state=state, limit=limit)))

    async def queues(self, prefix: str | None = None) -> list[str]:
        """Names of all queues (or those starting with ``prefix``), sorted; the broker sends
        them a page at a time."""
        listing = commands.Listing(prefix)
        while not listing.done:
            listing.take(await self._call(listing.request()))
        return listing.names

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue``; return how many."""
        return commands.parse_count(await self._call(commands.purge(queue)), "purged")

    async def redrive(self, queue: str, ids: Iterable[str] | None = None) -> RedriveResult:
        """Move the messages of ``<queue>.dead`` (or only ``ids``) back to ``queue``, their
        attempts reset; the result says how many moved and, with ``ids``, which did not."""
        return commands.parse_redrive(await self._call(commands.redrive(queue, ids)))

    async def remove(self, queue: str, ids: Iterable[str]) -> RemoveResult:
        """Delete the named ready or delayed messages of ``queue`` (a dead letter: name
        ``<queue>.dead``). A leased message is never removed: its holder may be working on it."""
        return commands.parse_remove(await self._call(commands.remove(queue, ids)))

    async def delete(self, queue: str, *, dead: bool = False) -> int:
        """Delete ``queue``, every message in it (leased ones too) and its settings; return how
        many messages went. ``<queue>.dead`` stays unless ``dead``. Raises ``NotFound`` if
        there is no such queue."""
        return commands.parse_count(await self._call(commands.delete(queue, dead=dead)), "deleted")

    async def pause(self, queue: str) -> None:
        """Stop ``queue``'s deliveries (it still takes PUTs; leases run as usual)."""
        await self._call(commands.pause(queue))

    async def resume(self, queue: str) -> None:
        """Restart a paused queue's deliveries (waiting GETs are served at once)."""
        await self._call(commands.resume(queue))

    async def config(
        self,
        queue: str,
        *,
        lease: float | Keep | None = KEEP,
        max_attempts: int | Keep | None = KEEP,
        max_length: int | Keep | None = KEEP,
        rate: float | Keep | None = KEEP,
        dedup_window: float | Keep | None = KEEP,
    ) -> QueueSettings:
        """Change some of ``queue``'s settings and return them all (``config(queue)`` only reads).

        A setting left out is kept; ``None`` resets it to the server's default.
        See ``QueueSettings`` for what each means.
        """
        request = commands.config(
            queue,
            lease=lease,
            max_attempts=max_attempts,
            max_length=max_length,
            rate=rate,
            dedup_window=dedup_window,
        )
        return commands.parse_settings(await self._call(request))

    async def ping(self) -> None:
        """Round trip to the server."""
        await self._call(commands.ping())


class SyncAdmin:
    """Inspecting and managing queues, on a blocking client (see ``AsyncAdmin``)."""

    def _call(self, request: Request) -> Reply:
        raise NotImplementedError  # Client sends it on its connection

    def info(self, id: str) -> MessageInfo:
        """Look at one message without changing it."""
        return commands.parse_info(self._call(commands.info(id)))

    def stats(self, queue: str | None = None) -> Stats:
        """Counters of the server, and of every queue (or just ``queue``)."""
        return commands.parse_stats(self._call(commands.stats(queue)))

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> PeekResult:
        """Look at up to ``limit`` messages of ``queue`` (see ``AsyncAdmin.peek``)."""
        return commands.parse_peek(self._call(commands.peek(queue, state=state, limit=limit)))

    def queues(self, prefix: str | None = None) -> list[str]:
        """Names of all queues (or those starting with ``prefix``), sorted."""
        listing = commands.Listing(prefix)
        while not listing.done:
            listing.take(self._call(listing.request()))
        return listing.names

    def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue``; return how many."""
        return commands.parse_count(self._call(commands.purge(queue)), "purged")

    def redrive(self, queue: str, ids: Iterable[str] | None = None) -> RedriveResult:
        """Move the messages of ``<queue>.dead`` (or only ``ids``) back to ``queue``."""
        return commands.parse_redrive(self._call(commands.redrive(queue, ids)))

    def remove(self, queue: str, ids: Iterable[str]) -> RemoveResult:
        """Delete the named ready or delayed messages of ``queue`` (never a leased one)."""
        return commands.parse_remove(self._call(commands.remove(queue, ids)))

    def delete(self, queue: str, *, dead: bool = False) -> int:
        """Delete ``queue`` and its messages; return how many (see ``AsyncAdmin.delete``)."""
        return commands.parse_count(self._call(commands.delete(queue, dead=dead)), "deleted")

    def pause(self, queue: str) -> None:
        """Stop ``queue``'s deliveries (it still takes PUTs; leases run as usual)."""
        self._call(commands.pause(queue))

    def resume(self, queue: str) -> None:
        """Restart a paused queue's deliveries."""
        self._call(commands.resume(queue))

    def config(
        self,
        queue: str,
        *,
        lease: float | Keep | None = KEEP,
        max_attempts: int | Keep | None = KEEP,
        max_length: int | Keep | None = KEEP,
        rate: float | Keep | None = KEEP,
        dedup_window: float | Keep | None = KEEP,
    ) -> QueueSettings:
        """Change some of ``queue``'s settings and return them all (see ``AsyncAdmin.config``)."""
        request = commands.config(
            queue,
            lease=lease,
            max_attempts=max_attempts,
            max_length=max_length,
            rate=rate,
            dedup_window=dedup_window,
        )
        return commands.parse_settings(self._call(request))

    def ping(self) -> None:
        """Round trip to the server."""
        self._call(commands.ping())
