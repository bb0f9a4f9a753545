"""The HTTP API's receipts on the Redis backend: RECEIVE and the receipt requests.

Owns: RECEIVE (a GET whose messages the library leases each to a receipt of its
own: the owner ``~<nonce>``, the nonce a fresh number of the queue's tag, so a
receipt works on every node and no connection's close or node's reaping ends
its lease; the HTTP client's address is kept for PEEK's holder), and
ACK_RECEIPTS, NACK_RECEIPTS, TOUCH_RECEIPTS and RELEASE_RECEIPTS: each receipt
read back into the id it names and its owner, and handled on its own, with the
in-memory backend's replies (a stale receipt is ``not_leased``, one that names
no message ``not_found``).
Must never: settle a lease with a receipt other than its own, or let a receipt
of one node's making depend on that node.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from broker.backend.redis import wire
from broker.errors import BadRequest, WonderQError
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.receipts import parse_receipt

if TYPE_CHECKING:
    from broker.backend.redis.handlers import Handlers
    from broker.backend.redis.owners import Owner, Slot

#: a readable receipt: (its text, its message's tag, id sequence, lease owner)
Named = tuple[str, str, str, str]


class Receipts:
    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers
        self.b = handlers.b
        self.config = handlers.config

    def receive(self, owner: Owner, req: rq.Receive, slot: Slot) -> object:
        if req.max > self.config.max_get:
            raise BadRequest(f"`max` is {req.max}; the limit (max-get) is {self.config.max_get}")
        tag = wire.tag_of(req.queue)
        self.b.register(tag)
        owner.tags.add(tag)
        wait = self.b.waits.new(owner, req, tag) if req.wait > 0 else None
        lease = req.lease * 1000 if req.lease is not None else False
        wid = wait.wid if wait is not None else False
        args = [
            "get", req.queue, owner.token, req.max, lease, wid,
            self.config.max_reply_bytes, owner.peer,
        ]  # fmt: skip

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply | None:
            if res[0] == "wait":
                assert wait is not None
                if wait.waiting:  # (unless a later op of the same call served it)
                    self.b.waits.timers.add_wait(wait)
                return None
            if wait is not None:
                self.b.waits.forget(wait)
            return rp.ReceiveReply(messages=[wire.received(tag, m, bodies, res[2]) for m in res[1]])

        return self.h.op(tag, args, slot, convert)

    # ------------------------------------------------------------ by receipt

    def _named(self, receipts: list[str]) -> tuple[list[Named], list[str]]:
        """The readable receipts (in order) and the others."""
        if len(receipts) > self.config.max_batch:
            raise BadRequest(
                f"`receipts` holds {len(receipts)} receipts; "
                f"the limit (max-batch) is {self.config.max_batch}"
            )
        named: list[Named] = []
        unreadable: list[str] = []
        for text in receipts:
            parsed = parse_receipt(text)
            parts = None if parsed is None else wire.split_id(parsed[0])
            if parsed is None or parts is None:
                unreadable.append(text)
            else:
                named.append((text, parts[0], parts[1], wire.receipt_owner(parsed[1])))
        return named, unreadable

    def ack(self, owner: Owner, req: rq.AckReceipts, slot: Slot) -> object:
        named, unreadable = self._named(req.receipts)

        async def run() -> rp.Reply:
            by_tag: dict[str, list[Named]] = {}
            for n in named:
                by_tag.setdefault(n[1], []).append(n)
            results = await asyncio.gather(
                *(
                    self.b.call_future(t, ["ack", False, [n[2] for n in ns], [n[3] for n in ns]])
                    for t, ns in by_tag.items()
                )
            )
            status = {}
            for ns, (res, _) in zip(by_tag.values(), results, strict=True):
                for n, st in zip(ns, res[1], strict=True):
                    status[n[0]] = st
            acked = sum(1 for n in named if status[n[0]] == 0)
            not_leased = [n[0] for n in named if status[n[0]] in (1, 2)]
            not_found = [n[0] for n in named if status[n[0]] == 3] + unreadable
            return rp.AckReceiptsReply(acked=acked, not_leased=not_leased, not_found=not_found)

        return self.h.later(slot, run())

    async def _each(self, named: list[Named], op: list[Any]) -> list[Any]:
        """``op`` (an op of the library, the owner and id put in) for each receipt: its
        result, or the error that refused it."""

        def args(n: Named) -> list[Any]:
            return [op[0], n[3], n[2], *op[1:]]

        results: list[Any] = await asyncio.gather(
            *(self.b.call_future(n[1], args(n)) for n in named), return_exceptions=True
        )
        return results

    @staticmethod
    def _sorted(
        named: list[Named], unreadable: list[str], results: list[Any]
    ) -> tuple[list[tuple[Named, Any]], list[str], list[str]]:
        """(done with its result, not_leased, not_found); an outage fails the request."""
        done: list[tuple[Named, Any]] = []
        not_leased: list[str] = []
        not_found = list(unreadable)
        for n, got in zip(named, results, strict=True):
            if isinstance(got, WonderQError):
                raise got
            res = got[0]
            if not wire.failed(res):
                done.append((n, res))
            elif res[2] == 3:  # (see the library's lease_status)
                not_found.append(n[0])
            else:  # acked already, or leased to another receipt since
                not_leased.append(n[0])
        return done, not_leased, not_found

    def nack(self, owner: Owner, req: rq.NackReceipts, slot: Slot) -> object:
        named, unreadable = self._named(req.receipts)

        async def run() -> rp.Reply:
            results = await self._each(named, ["nack", req.delay * 1000])
            done, not_leased, not_found = self._sorted(named, unreadable, results)
            dead = [n[0] for n, res in done if res[1]]
            return rp.NackReceiptsReply(
                nacked=len(done), not_leased=not_leased, not_found=not_found, dead=dead
            )

        return self.h.later(slot, run())

    def touch(self, owner: Owner, req: rq.TouchReceipts, slot: Slot) -> object:
        named, unreadable = self._named(req.receipts)
        lease = req.lease if req.lease is not None else self.config.lease_s

        async def run() -> rp.Reply:
            results = await self._each(named, ["touch", lease * 1000])
            done, not_leased, not_found = self._sorted(named, unreadable, results)
            return rp.TouchReceiptsReply(
                touched=len(done), not_leased=not_leased, not_found=not_found
            )

        return self.h.later(slot, run())

    def release(self, owner: Owner, req: rq.ReleaseReceipts, slot: Slot) -> object:
        named, unreadable = self._named(req.receipts)

        async def run() -> rp.Reply:
            results = await self._each(named, ["unlease"])
            done, _, _ = self._sorted(named, unreadable, results)
            return rp.ReleaseReceiptsReply(released=len(done))

        return self.h.later(slot, run())
