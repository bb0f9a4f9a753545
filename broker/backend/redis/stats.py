"""STATS and QUEUES on the Redis backend: figures that are the same on every node.

Owns: reading the queue names every node registered (and taking out those whose
queue was found gone: deleted, or forgotten when idle), each queue's figures from
its tag (one library op per queue, all in flight together), the totals (a sweep
of every queue: counted afresh for the first page of a listing, and shared by
the STATS that name a queue or ask for a later page while it is at most
``TOTALS_MAX_AGE_S`` old, so that those cost their own queues, not the whole
registry's), the ``cluster`` section (live nodes from the registry, this node's own connection
count live), STATS' per-connection view, and the settings views (only what
differs from the node's defaults in STATS; every value in CONFIG's reply).
Must never: keep figures of its own (Redis holds them), or answer for a queue
deleted since it was listed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from broker import __version__
from broker.backend.names import page_of
from broker.backend.redis import wire
from broker.config import Config
from broker.errors import WonderQError
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.names import COUNTERS

if TYPE_CHECKING:
    from broker.backend.redis.handlers import Handlers
    from broker.backend.redis.owners import Owner, Slot

log = logging.getLogger("wonderq.redis")

_SCANS_MAX: Final = 64  # registry reads for one page (deleted names are skipped)
_PAGES_MAX: Final = 10_000  # pages STATS' totals read: 10 million queues


#: how old the totals of a STATS that names a queue, or of a later page, may be
TOTALS_MAX_AGE_S: Final = 5.0


@dataclass(frozen=True)
class Swept:
    """One count of every registered queue: when, the names read, and the totals."""

    at: float
    names: frozenset[str]
    totals: dict[str, int]


class Stats:
    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers
        self.b = handlers.b
        self.config = handlers.config
        self._last: Swept | None = None  # the last sweep
        self._sweeping: asyncio.Future[Swept] | None = None

    def stats(self, owner: Owner, req: rq.Stats, slot: Slot) -> object:
        return self.h.later(slot, self._stats(req, slot))

    async def _stats(self, req: rq.Stats, slot: Slot) -> rp.Reply:
        await slot.after_earlier()
        after: str | None = None
        limit = req.limit if req.limit is not None else rq.LIST_LIMIT_DEFAULT
        if req.queue is not None:
            queues, _ = await self._figures([req.queue])
            if req.queue not in queues:
                raise wire.no_queue(req.queue)
            swept = await self._swept()
            if req.queue not in swept.names:  # its naming was lost: listed from now on
                self.b.register_names([req.queue])
            totals = swept.totals
        elif req.cursor is None:  # a listing's first page: its totals counted afresh
            every, swept = await self._sweep()
            page, after = page_of(list(every), req.prefix, None, limit)
            queues = {name: every[name] for name in page}
            totals = swept.totals
        else:  # a later page: its own queues, and totals at most TOTALS_MAX_AGE_S old
            names, after = await self.names_page(req.prefix, req.cursor, limit)
            queues, _ = await self._figures(names)
            totals = (await self._swept()).totals
        server: dict[str, Any] = {
            "version": __version__,
            "uptime": round(self.b.now() - self.b._started_at, 3),
            "started_at": self.b.started_wall,
        }
        server.update(totals)
        server.update(self.b.server_figures())
        server["cluster"] = await self._cluster()
        reply = rp.StatsReply(server=server, queues=queues)
        if req.connections:
            reply.connections = await self._connections()
        if after is not None:
            reply.next = after
        return reply

    async def _figures(self, names: list[str]) -> tuple[dict[str, rp.QueueStats], int]:
        """The figures of those of ``names`` whose queue exists (one library op each, all
        in flight together), in order, and their dedup ids forgotten early; the names
        of queues found gone are taken out of the registry."""
        results = await asyncio.gather(
            *(self.b.call_future(wire.tag_of(q), ["stats", q]) for q in names)
        )
        queues: dict[str, rp.QueueStats] = {}
        evicted = 0
        gone: list[str] = []
        for name, (res, _) in zip(names, results, strict=True):
            if wire.failed(res):
                gone.append(name)  # deleted or forgotten since it was registered
                continue
            queues[name] = self._queue_stats(res[1])
            evicted += res[1][10]
        self._unname(gone)
        return queues, evicted

    async def _sweep(self) -> tuple[dict[str, rp.QueueStats], Swept]:
        """Every registered queue's figures, and the count kept for the STATS that follow
        (the totals STATS' server section shows; not the figures, which only this call needs)."""
        names = await self.registered()
        queues, evicted = await self._figures(names)
        totals = {"queues": len(queues), "messages": 0, "leased": 0, "bytes": 0}
        for figures in queues.values():
            totals["messages"] += figures.ready + figures.delayed + figures.leased
            totals["leased"] += figures.leased
            totals["bytes"] += figures.bytes
        totals["dedup_evicted"] = evicted
        self._last = Swept(self.b.now(), frozenset(names), totals)
        return queues, self._last

    async def _count(self) -> Swept:
        return (await self._sweep())[1]

    async def _swept(self) -> Swept:
        """The last sweep if it is at most ``TOTALS_MAX_AGE_S`` old, else a new one (one at a
        time: the STATS that find one under way share it)."""
        last = self._last
        if last is not None and self.b.now() - last.at <= TOTALS_MAX_AGE_S:
            return last
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.ensure_future(self._count())
            self._sweeping.add_done_callback(_retrieved)  # its waiters may all be gone
        return await asyncio.shield(self._sweeping)

    def _queue_stats(self, f: list[Any]) -> rp.QueueStats:
        ready, delayed, leased, dead, waiting, size, age, counters, paused, values, _ = f
        out = rp.QueueStats(
            ready=ready,
            delayed=delayed,
            leased=leased,
            dead=dead,
            waiting_consumers=waiting,
            bytes=size,
            oldest_ready_age=round(age / 1000, 6) if age is not False else None,
            paused=bool(paused),
            settings=non_default(self.config, wire.settings(values)),
        )
        for name, n in zip(COUNTERS, counters, strict=True):
            setattr(out, name, n)
        return out

    async def _cluster(self) -> dict[str, Any]:
        res = await self.b.anode(["nodes"])
        nodes = []
        mine = self.b.node.inc
        live = self.b.server_figures().get("connections")
        for inc, info in res[1]:
            node = msgspec.json.decode(info)
            connections = node["connections"]  # as of its last heartbeat
            if inc == mine and live is not None:
                connections = live
            nodes.append({"id": node["id"], "address": node["address"], "connections": connections})
        nodes.sort(key=lambda n: n["id"])
        return {"node": self.b.node.id, "incarnation": self.b.node.inc, "nodes": nodes}

    async def _connections(self) -> list[rp.ConnectionView]:
        owners = self.b.owners()
        counts = {o.token: 0 for o in owners}
        by_tag: dict[str, list[str]] = {}
        for o in owners:
            for tag in o.tags:
                by_tag.setdefault(tag, []).append(o.token)
        results = await asyncio.gather(
            *(self.b.call_future(t, ["counts", tokens]) for t, tokens in by_tag.items())
        )
        for (_tag, tokens), (res, _) in zip(by_tag.items(), results, strict=True):
            for token, n in zip(tokens, res[1], strict=True):
                counts[token] += n
        return [
            rp.ConnectionView(
                address=o.peer,
                leases=counts[o.token],
                waiting=len(o.waits),
                requests=getattr(o.sink, "requests_served", 0),
            )
            for o in owners
        ]

    async def names_page(
        self, prefix: str, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` names of existing queues that start with ``prefix``, in order,
        after ``after``; and the cursor of the next page (None: no more). The registry
        may hold names of deleted queues: each is looked up, and skipped."""
        if after is not None and after < prefix:
            after = None
        out: list[str] = []
        for _ in range(_SCANS_MAX):
            want = limit + 1 - len(out)
            res = await self.b.anode(["names", prefix, after or False, want])
            names: list[str] = res[1]
            out.extend(await self._existing(names))
            if len(names) < want or len(out) > limit:
                break
            after = names[-1]
        else:  # a page of mostly deleted names: a short page, and where to go on
            return out, after
        return out[:limit], out[limit - 1] if len(out) > limit else None

    async def registered(self) -> list[str]:
        """Every name the registry holds, in order (some queues may be gone since)."""
        out: list[str] = []
        after: str | bool = False
        for _ in range(_PAGES_MAX):
            res = await self.b.anode(["names", "", after, rq.LIST_LIMIT_MAX])
            out.extend(res[1])
            if len(res[1]) < rq.LIST_LIMIT_MAX:
                break
            after = res[1][-1]
        return out

    async def _existing(self, names: list[str]) -> list[str]:
        """The names of ``names`` whose queue exists, in order (the rest are unnamed)."""
        found = await self._exist(names)
        self._unname([q for q in names if q not in found])
        return [q for q in names if q in found]

    def _unname(self, gone: list[str]) -> None:
        """``unname`` in the background (nothing if ``gone`` is empty)."""
        if gone:
            self.b.spawn(self.unname(gone))

    async def unname(self, gone: list[str]) -> None:
        """Take names whose queue was found gone out of the registry. A node that makes
        the queue again names it after the call that made it, so a removal that comes
        after that naming is undone here: each name is looked up again once removed, and
        named again if its queue exists by then."""
        try:
            await self.b.anode(["unname", gone])
            back = await self._exist(gone)
            if back:
                await self.b.anode(["queues", sorted(back)])
        except WonderQError as exc:  # a later listing tries again
            log.info("could not unregister %d queue name(s): %s", len(gone), exc.message)

    async def _exist(self, names: list[str]) -> set[str]:
        """Those of ``names`` whose queue exists now."""
        by_tag: dict[str, list[str]] = {}
        for q in names:
            by_tag.setdefault(wire.tag_of(q), []).append(q)
        results = await asyncio.gather(
            *(self.b.call_future(t, ["exists", qs]) for t, qs in by_tag.items())
        )
        return {
            q
            for qs, (res, _) in zip(by_tag.values(), results, strict=True)
            for q, there in zip(qs, res[1], strict=True)
            if there
        }

    def queues(self, owner: Owner, req: rq.Queues, slot: Slot) -> object:
        async def page() -> rp.Reply:
            await slot.after_earlier()
            limit = req.limit if req.limit is not None else rq.LIST_LIMIT_DEFAULT
            names, after = await self.names_page(req.prefix, req.cursor, limit)
            return rp.QueuesReply(queues=names, next=msgspec.UNSET if after is None else after)

        return self.h.later(slot, page())


def _retrieved(future: asyncio.Future[Swept]) -> None:
    if not future.cancelled():
        future.exception()


def non_default(config: Config, s: rp.QueueSettings) -> rp.QueueSettings:
    """The settings that differ from the node's defaults (STATS shows only those)."""
    c = config
    unset = msgspec.UNSET
    return rp.QueueSettings(
        lease=s.lease if s.lease is not unset and s.lease != c.lease_s else unset,
        max_attempts=s.max_attempts
        if s.max_attempts is not unset and s.max_attempts != c.max_attempts
        else unset,
        max_length=s.max_length
        if s.max_length is not unset and s.max_length != c.max_queue_length
        else unset,
        rate=s.rate,
        dedup_window=s.dedup_window
        if s.dedup_window is not unset and s.dedup_window != c.dedup_window_s
        else unset,
    )


def effective(config: Config, s: rp.QueueSettings) -> rp.QueueSettings:
    """Every setting, the node's default where the queue has none (CONFIG's reply)."""
    c = config
    unset = msgspec.UNSET
    return rp.QueueSettings(
        lease=c.lease_s if s.lease is unset else s.lease,
        max_attempts=c.max_attempts if s.max_attempts is unset else s.max_attempts,
        max_length=c.max_queue_length if s.max_length is unset else s.max_length,
        rate=None if s.rate is unset else s.rate,
        dedup_window=c.dedup_window_s if s.dedup_window is unset else s.dedup_window,
    )
