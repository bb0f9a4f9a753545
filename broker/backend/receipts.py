"""Leases owned by receipts: the HTTP API's requests, for backends built on the engine.

Owns: ``Receipt``, the lease owner of one delivery over HTTP (equal only to a
receipt with the same nonce, so a stale receipt, or a TCP connection, never
matches it), the nonces (a counter from a random start, so receipts differ
across restarts too), and the handlers of ``Receive``, ``AckReceipts``,
``NackReceipts``, ``TouchReceipts`` and ``ReleaseReceipts`` on an ``Engine``:
each receipt is handled on its own, as a batch ACK handles each id, and the
replies list the receipts that were stale (``not_leased``) or name no message
(``not_found``). The engine keeps nothing per receipt but the message's owner.
Must never: read a clock (``now`` is passed in) or encode wire bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from itertools import count
from typing import Final

import msgspec

from broker.config import Config
from broker.engine import Engine, Message, parse_id
from broker.errors import BadRequest, NotFound, NotLeased
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.receipts import format_receipt, parse_receipt

_NONCE_BITS: Final = 48


class Receipt:
    """The lease owner of one delivery: equal to every ``Receipt`` with its nonce."""

    __slots__ = ("nonce", "peer")

    def __init__(self, nonce: int, peer: str = "?") -> None:
        self.nonce = nonce
        self.peer = peer  # the HTTP client it was delivered to (PEEK's holder)

    def __eq__(self, other: object) -> bool:
        return type(other) is Receipt and other.nonce == self.nonce

    def __hash__(self) -> int:
        return hash(self.nonce)

    def __repr__(self) -> str:
        return f"Receipt({self.nonce:x})"


def received(msgs: list[Message], now: float) -> rp.ReceiveReply:
    """The reply to a receive: each message with its receipt and the seconds its lease has left."""
    out = []
    for m in msgs:
        owner = m.owner
        assert isinstance(owner, Receipt)
        message_id = format(m.seq, "x")
        out.append(
            rp.Received(
                id=message_id,
                queue=m.queue.name,
                body=msgspec.Raw(m.body),
                attempts=m.attempts,
                key=msgspec.UNSET if m.key is None else m.key,
                headers=msgspec.UNSET if m.headers is None else m.headers,
                receipt=format_receipt(message_id, owner.nonce),
                lease_left=round(m.due_at - now, 6),
            )
        )
    return rp.ReceiveReply(messages=out)


class Outcome:
    """Receipts sorted by what happened to each."""

    __slots__ = ("done", "flagged", "not_found", "not_leased")

    def __init__(self) -> None:
        self.done = 0
        self.flagged: list[str] = []  # done, and the action said True (a NACK that dead-lettered)
        self.not_leased: list[str] = []
        self.not_found: list[str] = []


class ReceiptOps:
    """The receipt requests on one engine (the in-memory backend registers these)."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.config = config
        self._nonces = count(secrets.randbits(_NONCE_BITS))

    def maker(self, peer: str) -> Callable[[], object]:
        """What the engine calls for the owner of each message one receive delivers."""
        nonces = self._nonces

        def make() -> Receipt:
            return Receipt(next(nonces), peer)

        return make

    def receive(
        self, owner: object, req: rq.Receive, now: float, token: object
    ) -> rp.ReceiveReply | None:
        if req.max > self.config.max_get:
            raise BadRequest(f"`max` is {req.max}; the limit (max-get) is {self.config.max_get}")
        peer = str(getattr(getattr(owner, "sink", None), "peer", "?"))
        msgs = self.engine.get(
            now,
            req.queue,
            owner,
            req.max,
            req.lease,
            req.wait,
            token=token,
            receipts=self.maker(peer),
        )
        return None if msgs is None else received(msgs, now)

    def _parsed(self, receipts: list[str]) -> tuple[list[str], list[tuple[object, int]], list[str]]:
        """The readable receipts with the (owner, id) each names, in order, and the others."""
        if len(receipts) > self.config.max_batch:
            raise BadRequest(
                f"`receipts` holds {len(receipts)} receipts; "
                f"the limit (max-batch) is {self.config.max_batch}"
            )
        texts: list[str] = []
        pairs: list[tuple[object, int]] = []
        unreadable: list[str] = []
        for text in receipts:
            parsed = parse_receipt(text)
            seq = None if parsed is None else parse_id(parsed[0])
            if parsed is None or seq is None:
                unreadable.append(text)
            else:
                texts.append(text)
                pairs.append((Receipt(parsed[1]), seq))
        return texts, pairs, unreadable

    def _each(self, receipts: list[str], act: Callable[[Receipt, int], bool | None]) -> Outcome:
        """``act(owner, seq)`` for each receipt in turn, sorting out the ones it refuses."""
        texts, pairs, unreadable = self._parsed(receipts)
        out = Outcome()
        out.not_found.extend(unreadable)
        for text, (owner, seq) in zip(texts, pairs, strict=True):
            assert isinstance(owner, Receipt)
            try:
                flagged = act(owner, seq)
            except NotLeased:
                out.not_leased.append(text)
            except NotFound:
                out.not_found.append(text)
            else:
                out.done += 1
                if flagged:
                    out.flagged.append(text)
        return out

    def ack(self, owner: object, req: rq.AckReceipts, now: float) -> rp.AckReceiptsReply:
        """All in one engine call (the common case: a worker acks what it received)."""
        texts, pairs, unreadable = self._parsed(req.receipts)
        result = self.engine.ack_owned(now, pairs)
        return rp.AckReceiptsReply(
            acked=result.acked,
            not_leased=[texts[i] for i in result.not_leased],
            not_found=[texts[i] for i in result.not_found] + unreadable,
        )

    def nack(self, owner: object, req: rq.NackReceipts, now: float) -> rp.NackReceiptsReply:
        def nack(receipt: Receipt, seq: int) -> bool:
            return self.engine.nack(now, receipt, seq, req.delay)

        out = self._each(req.receipts, nack)
        return rp.NackReceiptsReply(
            nacked=out.done, not_leased=out.not_leased, not_found=out.not_found, dead=out.flagged
        )

    def touch(self, owner: object, req: rq.TouchReceipts, now: float) -> rp.TouchReceiptsReply:
        def touch(receipt: Receipt, seq: int) -> None:
            self.engine.touch(now, receipt, seq, req.lease)

        out = self._each(req.receipts, touch)
        return rp.TouchReceiptsReply(
            touched=out.done, not_leased=out.not_leased, not_found=out.not_found
        )

    def release(
        self, owner: object, req: rq.ReleaseReceipts, now: float
    ) -> rp.ReleaseReceiptsReply:
        def release(receipt: Receipt, seq: int) -> None:
            self.engine.unlease(now, receipt, seq)

        return rp.ReleaseReceiptsReply(released=self._each(req.receipts, release).done)
