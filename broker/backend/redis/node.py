"""A node's membership: its id and incarnation, heartbeat, fencing and reaping.

Owns: the node's place in the registry every node shares (``wq:{nodes}``). A
node joins under ``--node-id`` with a fresh *incarnation* (``<id>.<random>``);
every lease owner token of the node starts with it. It renews a heartbeat key
with a TTL every ``ttl_s / 5``; each heartbeat also returns the incarnations
whose heartbeat stopped for ``ttl_s``, which the node then *reaps* on every tag
they used: fenced there (their later calls are refused, so a node that comes
back can never ACK), their leases released, their waiting GETs dropped.
A node that cannot renew its heartbeat for ``ttl_s / 2`` calls ``on_cut_off``
(the backend closes its client connections, before the others reap its
leases) and takes a new incarnation, which joins once Redis answers again; a
node told that its incarnation was given up (``lost``) does the same.
A second node that starts with the id of a live one is refused (``NodeIdTaken``)
after waiting up to ``ttl_s`` for a dead holder's heartbeat to run out.
Must never: reap its own live incarnation, or serve while cut off.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.exceptions import RedisError

from broker.backend.base import StartError

log = logging.getLogger("wonderq.redis")


class NodeIdTaken(StartError):
    """Another live node has this node's ``--node-id``."""


class Node:
    def __init__(
        self,
        node_id: str,
        ttl_s: float,
        call: Callable[[list[Any]], Awaitable[Any]],
        reap: Callable[[str, list[str]], Awaitable[None]],
        info: Callable[[], str],
        on_cut_off: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self.id = node_id
        self.ttl_s = ttl_s
        self._call = call  # one op of the node function; RedisError/OSError/TimeoutError
        self._reap = reap
        self._info = info
        self._on_cut_off = on_cut_off
        self._clock = clock
        self.inc = self._fresh()
        self._previous: str | None = None  # an incarnation of ours given up, not yet replaced
        self.serving = False  # joined, and not cut off
        self.leaving = False  # set by leave(): the heartbeat ends and never joins again
        self._last_ok = 0.0
        self._reaping: set[asyncio.Task[None]] = set()
        self.reaped = 0  # incarnations this node reaped since start

    def _fresh(self) -> str:
        return f"{self.id}.{secrets.token_hex(4)}"

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    async def join(self) -> None:
        """Join, waiting up to the TTL for a dead holder of our id to expire."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.ttl_s + 1.0
        while True:
            res = await self._call(
                ["join", self.id, self.inc, self.ttl_ms, self._info(), self._previous or False]
            )
            if res[0] == "ok":
                break
            if loop.time() >= give_up_at:
                raise NodeIdTaken(
                    f"node id {self.id!r} is in use by a live node (incarnation {res[1]}, "
                    f"heartbeat renewed {self.ttl_s - res[2] / 1000:.1f} s ago): "
                    "give each node its own --node-id"
                )
            await asyncio.sleep(min(0.5, self.ttl_s / 5))
        self._previous = None
        self._last_ok = loop.time()
        self.serving = True
        log.info(
            "node %s joined as %s",
            self.id,
            self.inc,
            extra={"event": "node_joined", "node": self.id, "incarnation": self.inc},
        )

    async def run(self) -> None:
        """Heartbeat until ``leave`` (or a cancel).

        The flag, not only the cancel, ends it: a cancel that lands as a Redis reply
        arrives can be swallowed below us (seen with uvloop: the loop then beat, and
        joined again, forever, and the backend's stop never returned).
        """
        interval = self.ttl_s / 5
        loop = asyncio.get_running_loop()
        while not self.leaving:
            await asyncio.sleep(interval)
            if self.leaving:
                return
            try:
                if not self.serving:
                    await self.join()
                    continue
                res = await self._call(["beat", self.id, self.inc, self.ttl_ms, self._info()])
            except (RedisError, OSError, TimeoutError) as exc:
                if self.serving and loop.time() - self._last_ok > self.ttl_s / 2:
                    self.cut_off(f"redis unreachable for over {self.ttl_s / 2:g} s ({exc})")
                continue
            except NodeIdTaken as exc:
                log.error("%s", exc)
                continue
            self._last_ok = loop.time()
            if res[0] == "lost":
                self.cut_off("its incarnation was declared dead by another node")
                continue
            for dead, tags in res[1]:
                task = loop.create_task(self._reap_one(dead, tags))
                self._reaping.add(task)
                task.add_done_callback(self._reaping.discard)

    def cut_off(self, why: str) -> None:
        """Stop serving under this incarnation: connections close, a new one joins later."""
        if not self.serving:
            return
        self.serving = False
        old = self.inc
        self._previous = old
        self.inc = self._fresh()
        log.warning(
            "node %s gives up incarnation %s: %s; closing its connections",
            self.id,
            old,
            why,
            extra={"event": "node_cut_off", "node": self.id, "incarnation": old},
        )
        self._on_cut_off(old)

    async def _reap_one(self, dead: str, tags: list[str]) -> None:
        try:
            await self._reap(dead, tags)
            await self._call(["reaped", dead])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("reaping %s failed (%s); a later heartbeat retries", dead, exc)
            return
        self.reaped += 1
        log.warning(
            "reaped dead node incarnation %s (%d tag(s))",
            dead,
            len(tags),
            extra={"event": "node_reaped", "incarnation": dead},
        )

    async def leave(self) -> None:
        self.leaving = True
        for task in list(self._reaping):
            task.cancel()
        if self.serving:
            self.serving = False
            await self._call(["leave", self.id, self.inc])


def node_info(node_id: str, address: str, connections: int, started_at: float) -> str:
    """What STATS' ``cluster`` section shows of a node (JSON, stored with its heartbeat)."""
    info = {"id": node_id, "address": address, "connections": connections, "started": started_at}
    return msgspec.json.encode(info).decode()
