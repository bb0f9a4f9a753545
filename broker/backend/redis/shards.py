"""Which Redis server holds a key: one Redis, or the masters of a Redis Cluster.

Owns: a plain redis-py asyncio client and a pipelined link per server
(``host:port``; the link carries the library's calls), and for a
Redis Cluster the slot map (``CLUSTER SLOTS``, asked of any server that
answers: the URL's, then every one seen since), read at start and again, in
the background and at most every ``REFRESH_S``, whenever a call met a server
that is gone or a ``MOVED`` reply. Routing is the node's own (``key_slot``
of the hash tag, then the map): no call ever waits for a refresh, so a master
that fails over delays its own slots only, and the calls of the other shards
go on. A slot no server serves (mid-failover) has no address: its calls fail
at once with ``unavailable``.
Must never: block the loop, hold a call while the map is read, or ask anything
but ``CLUSTER SLOTS`` of a server to learn the map.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from redis.crc import key_slot
from redis.exceptions import RedisError

from broker.backend.redis.link import Link
from broker.backend.redis.target import Target, plain_client

log = logging.getLogger("wonderq.redis")

SLOTS: Final = 16384
REFRESH_S: Final = 0.1  # between two reads of the slot map


def address(host: str, port: int) -> str:
    return f"{host}:{port}"


class Shards:
    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.cluster = target.cluster
        self._clients: dict[str, Any] = {}
        self._links: dict[str, Link] = {}
        self._known = [address(h, p) for h, p in target.hosts]  # servers to ask the map
        self._slots: list[str | None] = [None] * SLOTS
        self._masters: list[str] = [] if self.cluster else self._known[:1]
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = -REFRESH_S
        self.refreshes = 0  # slot maps read since start

    # ---------------------------------------------------------------- routing

    def of(self, key: str) -> str | None:
        """The address of the server that holds ``key`` (None: no server serves it now)."""
        if not self.cluster:
            return self._masters[0]
        return self._slots[key_slot(key.encode())]

    def client(self, where: str) -> Any:
        """The client of the server at ``where`` (made on first use)."""
        found = self._clients.get(where)
        if found is None:
            host, _, port = where.rpartition(":")
            found = self._clients[where] = plain_client(
                host, int(port), self.target, self.timeout_s
            )
        return found

    def link(self, where: str) -> Link | None:
        """The pipelined link to the server at ``where``, if one is open and usable."""
        found = self._links.get(where)
        return found if found is not None and found.usable else None

    async def open_link(self, where: str) -> Link:
        """Open a link to ``where`` (the caller bounds the time)."""
        host, _, port = where.rpartition(":")
        link = await Link.open(host, int(port), self.target)
        old = self._links.get(where)
        if old is not None:
            old.close()
        self._links[where] = link
        return link

    def masters(self) -> list[str]:
        """Every server that holds queues (a cluster's masters, as the map says)."""
        return list(self._masters)

    def servers(self) -> list[str]:
        """Every server known, masters first (for the wake channel: any will do)."""
        return self._masters + [a for a in self._known if a not in self._masters]

    # ----------------------------------------------------------------- the map

    async def load(self) -> None:
        """Read the slot map now (at start; a cluster only)."""
        if self.cluster:
            await self._read_map()

    def stale(self) -> None:
        """A call met a server that is gone or moved: read the map again soon."""
        if not self.cluster or self._refresh is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._refreshed_at + REFRESH_S - loop.time())
        self._refresh = loop.create_task(self._refresh_after(delay))

    def moved(self, slot: int, host: str, port: int) -> None:
        """A server said ``slot`` is at ``host:port`` now (MOVED); the rest is read soon."""
        self._slots[slot] = address(host, port)
        self.stale()

    async def _refresh_after(self, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            await self._read_map()
        except (RedisError, OSError, TimeoutError, ValueError, IndexError) as exc:
            log.warning("cannot read the cluster's slot map: %s", exc)
        finally:
            self._refresh = None
            self._refreshed_at = asyncio.get_running_loop().time()

    async def _read_map(self) -> None:
        """Ask the servers known, one after the other, until one gives the map."""
        error: Exception | None = None
        for where in list(self._known):
            try:
                async with asyncio.timeout(self.timeout_s):
                    ranges = await self.client(where).execute_command("CLUSTER SLOTS")
            except (RedisError, OSError, TimeoutError) as exc:
                error = exc
                continue
            self._apply(ranges)
            return
        raise error or RedisError("no server to ask the slot map")

    def _apply(self, ranges: list[Any]) -> None:
        slots: list[str | None] = [None] * SLOTS
        masters: list[str] = []
        for entry in ranges:
            first, last, master = int(entry[0]), int(entry[1]), entry[2]
            where = address(_text(master[0]), int(master[1]))
            slots[first : last + 1] = [where] * (last - first + 1)
            if where not in masters:
                masters.append(where)
            for server in entry[2:]:
                seen = address(_text(server[0]), int(server[1]))
                if seen not in self._known:
                    self._known.append(seen)
        self._slots = slots
        self._masters = masters
        self.refreshes += 1

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()
        for link in self._links.values():
            link.close()
        self._links.clear()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
