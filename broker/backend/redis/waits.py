"""This node's waiting GETs on the Redis backend: from the wait to its one reply.

Owns: the node's waits by waiter id (Redis knows each by that id, in arrival
order per queue), answering each exactly once (messages delivered in a call's
reply, collected when the node's channel says a delivery waits in Redis, or
found when the wait is ended), a wait's end (its timeout on this node's clock,
CANCEL, a stop), and the queue *ticks* (``Timers``): when Redis must next fire
a queue's due items for the waits here. After the channel (re)subscribes,
every tag with waits is collected and every waited queue ticked, so a missed
message costs a tick, never a stuck wait.
Must never: answer a wait twice, poll Redis for messages, or keep a wait after
its reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from itertools import count
from typing import TYPE_CHECKING, Any

from broker.backend.redis import wire
from broker.backend.redis.calls import Op, ignore
from broker.backend.redis.timers import Timers, Wait
from broker.errors import WonderQError
from broker.histogram import WAIT_BOUNDS_S, Histogram
from broker.protocol import replies as rp
from broker.protocol import requests as rq

if TYPE_CHECKING:
    from broker.backend.redis.backend import RedisBackend
    from broker.backend.redis.owners import Owner


class Waits:
    def __init__(self, backend: RedisBackend, loop_timers: bool) -> None:
        self.b = backend
        self.by_wid: dict[str, Wait] = {}
        self.timers = Timers(backend.now, loop_timers, self._expire, self._tick_due)
        self.get_wait = Histogram(WAIT_BOUNDS_S)  # how long GETs waited (the metrics read it)
        self._wid_n = count(1)

    def new(self, owner: Owner, request: rq.Get | rq.Receive, tag: str) -> Wait:
        now = self.b.now()
        wid = f"{self.b.node.inc}.{next(self._wid_n)}"
        wait = Wait(wid, owner, request, tag, now, now + request.wait)
        self.by_wid[wid] = wait
        owner.waits[wid] = wait
        return wait

    def forget(self, wait: Wait) -> None:
        """It got its reply some other way (the call that made it found messages)."""
        wait.waiting = False
        self.by_wid.pop(wait.wid, None)
        wait.owner.waits.pop(wait.wid, None)

    def answer(self, wait: Wait, items: list[Any], bodies: list[bytes], now_ms: float) -> None:
        """Reply to a wait with the library's views of its messages (none: empty)."""
        self.forget(wait)
        owner = wait.owner
        self.get_wait.observe(max(0.0, self.b.now() - wait.since))
        reply: rp.Reply
        if wait.receipts:  # leased to receipts, not to the connection
            received = [wire.received(wait.tag, m, bodies, now_ms) for m in items]
            reply = rp.ReceiveReply(messages=received)
        else:
            msgs = [wire.delivered(wait.tag, m, bodies) for m in items]
            owner.leased.update(m.id for m in msgs)
            reply = rp.GetReply(messages=msgs) if msgs else rp.EMPTY_GET
        if owner.sink is not None:
            owner.sink.deliver(wait.request, reply)

    def take_deliveries(
        self, tag: str, deliveries: list[Any], bodies: list[bytes], now_ms: float
    ) -> None:
        for wid, items in deliveries:
            wait = self.by_wid.pop(wid, None)
            if wait is not None:
                self.answer(wait, items, bodies, now_ms)
                continue
            # its connection closed: the close op releases the leases it owns; receipts
            # it never handed out are given back here, their attempts not counted
            for m in items:
                if m[6]:
                    owner = wire.receipt_owner(int(m[6], 16))
                    self.b.calls.submit(tag, Op(["unlease", owner, m[0]], [], ignore))

    def end(self, wait: Wait) -> None:
        """End a waiting GET now, empty (a stop); Redis forgets it with an unwait op."""
        if not wait.waiting:
            return
        self.answer(wait, [], [], 0.0)
        # if it was served meanwhile, its connection's close releases those leases
        self.b.calls.submit(wait.tag, Op(["unwait", wait.queue, wait.wid], [], ignore))

    def drop_all(self) -> None:
        """Forget every wait without a reply (the connections are closing)."""
        for wait in self.by_wid.values():
            wait.waiting = False
        self.by_wid.clear()

    def unwait(self, wait: Wait) -> Coroutine[Any, Any, bool]:
        """End a waiting GET in Redis; awaited, True if it was still waiting (answered
        empty now). The op is submitted at this call, not when awaited: what the same
        connection sends after it (a CANCEL, then a NACK) reaches Redis after it, so a
        message released then is not served to the GET being cancelled."""
        submitted = self.b.call_future(wait.tag, ["unwait", wait.queue, wait.wid])
        return self._unwaited(wait, submitted)

    async def _unwaited(
        self, wait: Wait, submitted: asyncio.Future[tuple[Any, list[bytes]]]
    ) -> bool:
        res, _ = await submitted
        if res[0] == "gone":
            self.answer(wait, [], [], 0.0)
            return True
        if res[0] == "dlv" and wait.waiting:  # served meanwhile: those messages are its reply
            self.answer(wait, res[1], [], self.b.redis_now_ms())
        return False

    def _expire(self, wait: Wait) -> None:
        """A waiting GET's wait ran out on this node's clock."""
        if not wait.waiting:
            return

        async def run() -> None:
            try:
                await self.unwait(wait)
            except WonderQError as exc:
                if wait.waiting:
                    self.forget(wait)
                    if wait.owner.sink is not None:
                        wait.owner.sink.deliver(wait.request, rp.error_reply(exc))

        self.b.spawn(run())

    def collect(self, tag: str) -> None:
        """Take this node's deliveries stored on ``tag`` (its channel said there are some)."""

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if error is None:
                self.take_deliveries(tag, result[1], [], self.b.redis_now_ms())

        self.b.calls.submit(tag, Op(["collect"], [], done))

    # ---------------------------------------------------------------- ticks

    def tick_at(self, tag: str, queue: str, at_ms: float) -> None:
        """Ask Redis to fire ``queue``'s due items at Redis time ``at_ms`` (if we wait there)."""
        at = (at_ms - self.b.redis_offset_ms) / 1000 + 0.001
        self.timers.add_tick(tag, queue, at)

    def _tick_due(self, tag: str, queue: str) -> None:
        if any(w.tag == tag and w.queue == queue for w in self.by_wid.values()):
            self.b.calls.submit(tag, Op(["tick", queue], [], ignore))

    def on_wake(self, data: str) -> None:
        """A message on the node's channel (see ``events.py``)."""
        kind, _, rest = data.partition(" ")
        prefix, _, rest = rest.partition(" ")
        tag = prefix[4:-1]  # wq:{tag}
        if kind == "d":
            self.collect(tag)
        elif kind == "t":
            at, _, queue = rest.partition(" ")
            self.tick_at(tag, queue, float(at))

    def resync(self) -> None:
        """After (re)subscribing: collect what may have been missed, and tick every queue
        this node waits on."""
        waited = {(w.tag, w.queue) for w in self.by_wid.values()}
        for tag in {t for t, _ in waited}:
            self.collect(tag)
        for tag, queue in waited:
            self.b.calls.submit(tag, Op(["tick", queue], [], ignore))
