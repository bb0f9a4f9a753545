"""A connection's lease owner on a Redis node, and the slots of one batch's replies.

Owns: ``Owner`` (the token Redis knows a connection by, the ids and waits this
node holds for it) and ``Batch``/``Slot`` (the replies of one ``execute``:
filled now or later, in order; a slot can wait for the ones before it).
Must never: talk to Redis (the backend and its handlers do), or hold queue state.
"""

from __future__ import annotations

import asyncio

from broker.backend.base import Replies, ReplySink
from broker.backend.redis.timers import OwnerWaits
from broker.protocol import replies as rp


class Owner:
    """The lease owner of one connection: its token, and what this node knows of it."""

    __slots__ = ("leased", "sink", "tags", "token", "waits")

    def __init__(self, token: str, sink: ReplySink | None) -> None:
        self.token = token
        self.sink = sink
        self.tags: set[str] = set()  # tags where it may hold leases or waits
        self.leased: set[str] = set()  # ids it was given and has not acked or nacked
        self.waits = OwnerWaits()  # its waiting GETs by waiter id (and by rid)

    @property
    def peer(self) -> str:
        return str(getattr(self.sink, "peer", "?"))


class Batch:
    """The replies of one ``execute``: filled now or later, resolved once all are in."""

    __slots__ = ("future", "left", "open", "replies", "waiters")

    def __init__(self, n: int) -> None:
        self.replies: Replies = [None] * n
        self.left = 0
        self.open = bytearray(n)  # 1: the slot's reply comes later and has not come
        self.future: asyncio.Future[Replies] | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []

    def fill(self, i: int, reply: rp.Reply | None) -> None:
        self.replies[i] = reply
        self.left -= 1
        self.open[i] = 0
        if self.waiters:
            self._wake()
        if self.left == 0 and self.future is not None and not self.future.done():
            self.future.set_result(self.replies)

    def settled_before(self, i: int) -> asyncio.Future[None] | None:
        """Done once every slot before ``i`` has its reply (None: they all have)."""
        if 1 not in self.open[:i]:
            return None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((i, fut))
        return fut

    def _wake(self) -> None:
        keep = []
        for i, fut in self.waiters:
            if 1 in self.open[:i]:
                keep.append((i, fut))
            elif not fut.done():
                fut.set_result(None)
        self.waiters = keep


class Slot:
    __slots__ = ("batch", "i")

    def __init__(self, batch: Batch, i: int) -> None:
        self.batch = batch
        self.i = i

    async def after_earlier(self) -> None:
        """Once the requests before this one in its batch have their replies (a listing
        then sees the queues they made: their names are registered before their replies)."""
        earlier = self.batch.settled_before(self.i)
        if earlier is not None:
            await earlier

    def fill(self, reply: rp.Reply | None) -> None:
        self.batch.fill(self.i, reply)
