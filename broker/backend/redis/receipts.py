"""Leases owned by receipts on the Redis backend: the HTTP API's requests.

Owns: the handlers of ``Receive``, ``AckReceipts``, ``NackReceipts``,
``TouchReceipts`` and ``ReleaseReceipts`` (registered into the op table of
``handlers.py``), and ``ReceiveWait``, a waiting receive of this node. Each
receive leases its messages to an owner of its own, ``~<nonce>/<peer>`` (a
fresh random nonce, tied to no connection and no node, so only the lease's
deadline, an ACK or a NACK ends it; the peer is for PEEK); each message's receipt is
``<id>.<nonce>`` (``broker/protocol/receipts.py``), from which any node
rebuilds the owner, and whose id routes it to its shard as an ACK's does. Each
receipt is handled on its own, as in memory (``broker/backend/receipts.py``):
a stale receipt (the message was delivered again since, to another nonce)
changes nothing and is listed under ``not_leased``.
A waiting receive whose client went away is ended with ``unwait``: a delivery
made meanwhile still reaches its sink (``Poll``), which gives it back with
``ReleaseReceipts`` (ready again, the attempt not counted).
Must never: lease a receipt's message to a connection's owner token, or drop a
delivery made for a receive (each reaches its sink, to be written or released).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from broker.backend.receipts import Outcome
from broker.backend.redis import wire
from broker.backend.redis.timers import Wait
from broker.errors import BadRequest, WonderQError
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.receipts import format_receipt, parse_receipt

if TYPE_CHECKING:
    from broker.backend.redis.backend import Owner, Slot
    from broker.backend.redis.handlers import Handlers

_NONCE_BITS: Final = 64  # a receipt's nonce is at most 16 hex digits
#: the lease status of an id the library does not hold (see ``wire.lease_error``)
_NOT_FOUND: Final = 3


def owner_of(nonce: int) -> str:
    """How a receipt names its lease's owner (``~`` is in no node id: no node holds it)."""
    return f"~{nonce:x}"


def holder_of(nonce: int, peer: str) -> str:
    """The owner a receive leases to: ``owner_of`` and the client's address (PEEK's holder)."""
    return f"{owner_of(nonce)}/{peer}"


class ReceiveWait(Wait):
    """A waiting receive: its messages go to receipts with its nonce."""

    __slots__ = ("lease_s", "nonce")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.nonce = 0
        self.lease_s = 0.0  # the lease its messages get (the library says, when it waits)

    def reply(self, msgs: list[rp.Delivered]) -> rp.ReceiveReply:
        return received(msgs, self.nonce, self.lease_s)


def received(msgs: list[rp.Delivered], nonce: int, lease_s: float) -> rp.ReceiveReply:
    """The reply to a receive: each message with its receipt and its lease's length."""
    return rp.ReceiveReply(
        messages=[
            rp.Received(
                id=m.id,
                queue=m.queue,
                body=m.body,
                attempts=m.attempts,
                key=m.key,
                headers=m.headers,
                receipt=format_receipt(m.id, nonce),
                lease_left=lease_s,
            )
            for m in msgs
        ]
    )


class _Item:
    """One readable receipt: its text, shard, message and owner."""

    __slots__ = ("owner", "seq", "tag", "text")

    def __init__(self, text: str, tag: str, seq: str, owner: str) -> None:
        self.text = text
        self.tag = tag
        self.seq = seq
        self.owner = owner


def _sort(out: Outcome, text: str, status: int, flagged: bool = False) -> None:
    """Count a receipt's status (see ``wire.lease_error``) into ``out``."""
    if status == 0:
        out.done += 1
        if flagged:
            out.flagged.append(text)
    elif status == _NOT_FOUND:
        out.not_found.append(text)
    else:  # acked already, or leased to another delivery: stale
        out.not_leased.append(text)


class ReceiptHandlers:
    """The receipt requests on Redis; ``register`` adds them to the op table."""

    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers
        self.b = handlers.b
        self.config = handlers.config

    def register(self, table: dict[type, Callable[[Owner, Any, Slot], Any]]) -> None:
        table[rq.Receive] = self.receive
        table[rq.AckReceipts] = self.ack
        table[rq.NackReceipts] = self.nack
        table[rq.TouchReceipts] = self.touch
        table[rq.ReleaseReceipts] = self.release

    # -------------------------------------------------------------- receive

    def receive(self, owner: Owner, req: rq.Receive, slot: Slot) -> object:
        if req.max > self.config.max_get:
            raise BadRequest(f"`max` is {req.max}; the limit (max-get) is {self.config.max_get}")
        tag = wire.tag_of(req.queue)
        self.b.register(tag)  # its wait, if it waits, is this incarnation's (reaping)
        nonce = secrets.randbits(_NONCE_BITS)
        wait: ReceiveWait | None = None
        if req.wait > 0:
            made = self.b.new_wait(owner, req, tag, ReceiveWait)
            assert isinstance(made, ReceiveWait)
            wait = made
            wait.nonce = nonce
        lease = req.lease * 1000 if req.lease is not None else False
        wid = wait.wid if wait is not None else False
        args = [
            "receive",
            req.queue,
            holder_of(nonce, owner.peer),
            req.max,
            lease,
            wid,
            self.config.max_reply_bytes,
        ]

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply | None:
            if res[0] == "wait":
                assert wait is not None
                wait.lease_s = res[1] / 1000
                if wait.waiting:  # (unless a later op of the same call served it)
                    self.b.timers.add_wait(wait)
                return None
            if wait is not None:
                wait.waiting = False
                self.b.waits.pop(wait.wid, None)
                owner.waits.pop(wait.wid, None)
            msgs = [wire.delivered(tag, m, bodies) for m in res[1]]
            return received(msgs, nonce, res[2] / 1000)

        return self.h._op(tag, args, slot, convert)

    def end(self, wait: ReceiveWait) -> None:
        """The receive's client went away: end its wait in Redis. A delivery made
        meanwhile still reaches the receive's sink (which releases it): the wait stays
        known to this node until the library says what became of it."""

        async def run() -> None:
            # Redis unreachable: the wait's own deadline ends it later (expire_wait)
            with contextlib.suppress(WonderQError):
                await self.h._unwait(wait)

        self.b._spawn(run())

    # ------------------------------------------------------------- by receipt

    def _parsed(self, receipts: list[str]) -> tuple[list[_Item], list[str]]:
        """The readable receipts, in order, and the others (they name no message)."""
        self.h._max_batch(len(receipts), "receipts")
        items: list[_Item] = []
        unreadable: list[str] = []
        for text in receipts:
            parsed = parse_receipt(text)
            parts = None if parsed is None else wire.split_id(parsed[0])
            if parsed is None or parts is None:
                unreadable.append(text)
            else:
                items.append(_Item(text, parts[0], parts[1], owner_of(parsed[1])))
        return items, unreadable

    def _run(
        self, slot: Slot, receipts: list[str], op: Callable[[_Item], list[Any]], finish: Finish
    ) -> object:
        """``op(item)`` for each readable receipt, all submitted now (one library call per
        shard), then ``finish`` with the items, their results and the unreadable ones."""
        items, unreadable = self._parsed(receipts)
        futures = [self.b.call_future(item.tag, op(item)) for item in items]

        async def run() -> rp.Reply:
            results = await asyncio.gather(*futures)
            return finish(items, [res for res, _ in results], unreadable)

        return self.h._async(slot, run())

    def ack(self, owner: Owner, req: rq.AckReceipts, slot: Slot) -> object:
        def finish(items: list[_Item], results: list[Any], unreadable: list[str]) -> rp.Reply:
            out = Outcome()
            for item, res in zip(items, results, strict=True):
                _sort(out, item.text, res[1][0])
            return rp.AckReceiptsReply(
                acked=out.done, not_leased=out.not_leased, not_found=out.not_found + unreadable
            )

        return self._run(slot, req.receipts, lambda i: ["ack", i.owner, [i.seq]], finish)

    def nack(self, owner: Owner, req: rq.NackReceipts, slot: Slot) -> object:
        delay_ms = req.delay * 1000

        def finish(items: list[_Item], results: list[Any], unreadable: list[str]) -> rp.Reply:
            out = Outcome()
            out.not_found.extend(unreadable)
            for item, res in zip(items, results, strict=True):
                if res[0] == "e":
                    _sort(out, item.text, res[2])
                else:
                    _sort(out, item.text, 0, flagged=bool(res[1]))
            return rp.NackReceiptsReply(
                nacked=out.done,
                not_leased=out.not_leased,
                not_found=out.not_found,
                dead=out.flagged,
            )

        return self._run(slot, req.receipts, lambda i: ["nack", i.owner, i.seq, delay_ms], finish)

    def touch(self, owner: Owner, req: rq.TouchReceipts, slot: Slot) -> object:
        lease_ms = (req.lease if req.lease is not None else self.config.lease_s) * 1000

        def finish(items: list[_Item], results: list[Any], unreadable: list[str]) -> rp.Reply:
            out = Outcome()
            out.not_found.extend(unreadable)
            for item, res in zip(items, results, strict=True):
                _sort(out, item.text, res[2] if res[0] == "e" else 0)
            return rp.TouchReceiptsReply(
                touched=out.done, not_leased=out.not_leased, not_found=out.not_found
            )

        return self._run(slot, req.receipts, lambda i: ["touch", i.owner, i.seq, lease_ms], finish)

    def release(self, owner: Owner, req: rq.ReleaseReceipts, slot: Slot) -> object:
        def finish(items: list[_Item], results: list[Any], unreadable: list[str]) -> rp.Reply:
            out = Outcome()
            for item, res in zip(items, results, strict=True):
                _sort(out, item.text, res[1][0])
            return rp.ReleaseReceiptsReply(released=out.done)

        return self._run(slot, req.receipts, lambda i: ["unlease", i.owner, [i.seq]], finish)


Finish = Callable[[list[_Item], list[Any], list[str]], rp.Reply]
