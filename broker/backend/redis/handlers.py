"""The op handlers of the Redis backend: a request in, library ops out, a reply back.

Owns: the dict from request type to handler (queue management in ``manage.py``,
STATS and QUEUES in ``stats.py``, the HTTP API's receipts in ``receipts.py``), the plumbing they share (an op whose reply
fills its slot when Redis answers; a reply that needs several ops), and the
message requests themselves: checking what the library cannot (limits of this
node's config, id formats), building their ops, and turning the library's
results into the typed replies the in-memory backend gives, with the same error
words; and CANCEL (the waits themselves are ``waits.py``'s). A handler returns a reply, ``None`` (a GET
now waiting), or ``PENDING`` (its slot is filled when Redis answers).
Must never: wait for Redis itself (``Calls`` does), or reply out of its slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from broker.backend.redis import wire
from broker.backend.redis.calls import Op
from broker.backend.redis.manage import Manage
from broker.backend.redis.receipts import Receipts
from broker.backend.redis.stats import Stats
from broker.errors import BadRequest, TooLarge, UnknownOp, WonderQError
from broker.protocol import replies as rp
from broker.protocol import requests as rq

if TYPE_CHECKING:
    from broker.backend.redis.backend import RedisBackend
    from broker.backend.redis.owners import Owner, Slot

Convert = Callable[[Any, list[bytes]], rp.Reply | None]


class Handlers:
    def __init__(self, backend: RedisBackend) -> None:
        from broker.backend.redis.backend import PENDING

        self.b = backend
        self.config = backend.config
        self.PENDING = PENDING
        self.stats = stats = Stats(self)
        manage = Manage(self)
        receipts = Receipts(self)
        self._table: dict[type, Callable[[Owner, Any, Slot], Any]] = {
            rq.Put: self.put,
            rq.Get: self.get,
            rq.Ack: self.ack,
            rq.Nack: self.nack,
            rq.Touch: self.touch,
            rq.Info: self.info,
            rq.Peek: self.peek,
            rq.Stats: stats.stats,
            rq.Queues: stats.queues,
            rq.Purge: manage.purge,
            rq.Redrive: manage.redrive,
            rq.Remove: manage.remove,
            rq.Delete: manage.delete,
            rq.Pause: manage.pause,
            rq.Resume: manage.resume,
            rq.Configure: manage.configure,
            rq.Receive: receipts.receive,
            rq.AckReceipts: receipts.ack,
            rq.NackReceipts: receipts.nack,
            rq.TouchReceipts: receipts.touch,
            rq.ReleaseReceipts: receipts.release,
            rq.Ping: self.ping,
            rq.Quit: self.ping,
            rq.Help: self.help,
            rq.Cancel: self.cancel,
        }

    def handle(self, owner: Owner, request: rq.AnyRequest, slot: Slot) -> Any:
        handler = self._table.get(type(request))
        if handler is None:
            raise UnknownOp(f"{type(request).__name__} is not served by this backend")
        return handler(owner, request, slot)

    # ------------------------------------------------------------- plumbing

    def op(
        self,
        tag: str,
        args: list[Any],
        slot: Slot,
        convert: Convert,
        bodies: list[bytes] | None = None,
        body_at: int = -1,
    ) -> object:
        def done(result: Any, out: list[bytes], error: WonderQError | None) -> None:
            if error is None:
                try:
                    slot.fill(convert(result, out))
                    return
                except WonderQError as exc:
                    error = exc
            slot.fill(rp.error_reply(error))

        self.b.calls.submit(tag, Op(args, bodies or [], done, body_at))
        return self.PENDING

    def later(self, slot: Slot, work: Coroutine[Any, Any, rp.Reply]) -> object:
        async def run() -> None:
            try:
                reply: rp.Reply = await work
            except WonderQError as exc:
                reply = rp.error_reply(exc)
            slot.fill(reply)

        self.b.spawn(run())
        return self.PENDING

    def max_batch(self, n: int, what: str) -> None:
        if n > self.config.max_batch:
            raise BadRequest(
                f"`{what}` holds {n} {what}; the limit (max-batch) is {self.config.max_batch}"
            )

    # ------------------------------------------------------------- producer

    def put(self, owner: Owner, req: rq.Put, slot: Slot) -> object:
        if isinstance(req.body, msgspec.Raw):
            entries: list[Any] = [req]
        else:
            assert isinstance(req.messages, list)
            if len(req.messages) > self.config.max_batch:
                raise BadRequest(
                    f"`messages` holds {len(req.messages)} messages; "
                    f"the limit (max-batch) is {self.config.max_batch}"
                )
            entries = req.messages
        max_body = self.config.max_body
        bodies: list[bytes] = []
        items: list[list[Any]] = []
        for m in entries:
            body = bytes(m.body)
            if len(body) > max_body:
                raise TooLarge(f"body is {len(body)} bytes; the limit (max-body) is {max_body}")
            bodies.append(body)
            items.append(
                [m.key, m.delay * 1000, m.priority, m.max_attempts, m.dedup, m.headers or None]
            )
        queue = req.queue
        tag = wire.tag_of(queue)
        single = isinstance(req.body, msgspec.Raw)

        def convert(res: Any, out: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.queue_full(queue, res[2], res[3], res[4])
            ids = [wire.format_id(tag, s) for s in res[1]]
            if single:
                return rp.PutReply(id=ids[0], duplicate=True if res[2] else msgspec.UNSET)
            return rp.PutManyReply(ids=ids, duplicates=res[2])

        return self.op(tag, ["put", queue, items, 0], slot, convert, bodies, body_at=3)

    # ------------------------------------------------------------- consumer

    def get(self, owner: Owner, req: rq.Get, slot: Slot) -> object:
        if req.max > self.config.max_get:
            raise BadRequest(f"`max` is {req.max}; the limit (max-get) is {self.config.max_get}")
        if req.wait > 0 and len(owner.waits) >= self.config.max_waiting:
            raise BadRequest(
                f"this connection has {len(owner.waits)} waiting GETs; the limit (max-waiting) "
                f"is {self.config.max_waiting}: CANCEL one, or wait for one to end"
            )
        tag = wire.tag_of(req.queue)
        self.b.register(tag)
        owner.tags.add(tag)
        wait = self.b.waits.new(owner, req, tag) if req.wait > 0 else None
        lease = req.lease * 1000 if req.lease is not None else False
        wid = wait.wid if wait is not None else False
        args = ["get", req.queue, owner.token, req.max, lease, wid, self.config.max_reply_bytes]

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply | None:
            if res[0] == "wait":
                assert wait is not None
                if wait.waiting:  # (unless a later op of the same call served it)
                    self.b.waits.timers.add_wait(wait)
                return None
            msgs = [wire.delivered(tag, m, bodies) for m in res[1]]
            if wait is not None:
                self.b.waits.forget(wait)
            owner.leased.update(m.id for m in msgs)
            return rp.GetReply(messages=msgs) if msgs else rp.EMPTY_GET

        return self.op(tag, args, slot, convert)

    def ack(self, owner: Owner, req: rq.Ack, slot: Slot) -> object:
        if isinstance(req.id, str):
            text = req.id
            tag, seq = self._split(text)

            def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
                status = res[1][0]
                if status:
                    raise wire.lease_error(status, text)
                owner.leased.discard(text)
                return rp.OK

            return self.op(tag, ["ack", owner.token, [seq]], slot, convert)
        assert isinstance(req.ids, list)
        self.max_batch(len(req.ids), "ids")
        return self.later(slot, self._ack_many(owner, req.ids))

    async def _ack_many(self, owner: Owner, ids: list[str]) -> rp.Reply:
        by_tag: dict[str, list[tuple[str, str]]] = {}
        unparsable: list[str] = []
        for text in ids:
            parts = wire.split_id(text)
            if parts is None:
                unparsable.append(text)
            else:
                by_tag.setdefault(parts[0], []).append((text, parts[1]))
        tags = list(by_tag)
        results = await asyncio.gather(
            *(self.b.call_future(t, ["ack", owner.token, [s for _, s in by_tag[t]]]) for t in tags)
        )
        statuses: dict[str, list[int]] = {}  # id -> its statuses, in the order it was given
        for tag, (res, _) in zip(tags, results, strict=True):
            for (text, _seq), st in zip(by_tag[tag], res[1], strict=True):
                statuses.setdefault(text, []).append(st)
        per_text = [(text, statuses[text].pop(0)) for text in ids if text in statuses]
        acked = 0
        not_leased: list[str] = []
        not_found: list[str] = []
        for text, st in per_text:
            if st == 0:
                acked += 1
                owner.leased.discard(text)
            elif st == 3:
                not_found.append(text)
            else:
                not_leased.append(text)
        return rp.AckManyReply(acked=acked, not_leased=not_leased, not_found=not_found + unparsable)

    def nack(self, owner: Owner, req: rq.Nack, slot: Slot) -> object:
        text = req.id
        tag, seq = self._split(text)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.lease_error(res[2], text)
            owner.leased.discard(text)
            return rp.NackReply(dead=True) if res[1] else rp.OK

        return self.op(tag, ["nack", owner.token, seq, req.delay * 1000], slot, convert)

    def touch(self, owner: Owner, req: rq.Touch, slot: Slot) -> object:
        text = req.id
        tag, seq = self._split(text)
        lease = req.lease if req.lease is not None else self.config.lease_s

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.lease_error(res[2], text)
            return rp.OK

        return self.op(tag, ["touch", owner.token, seq, lease * 1000], slot, convert)

    def _split(self, text: str) -> tuple[str, str]:
        parts = wire.split_id(text)
        if parts is None:
            raise wire.no_message(text)
        return parts

    # -------------------------------------------------------------- inspect

    def info(self, owner: Owner, req: rq.Info, slot: Slot) -> object:
        text = req.id
        tag, seq = self._split(text)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if res[0] == "acked":
                queue, attempts = res[1]
                view = rp.MessageView(id=text, queue=queue, state="acked", attempts=attempts)
                return rp.InfoReply(message=view)
            if wire.failed(res):
                raise wire.no_message(text)
            return rp.InfoReply(message=wire.message_view(tag, res[1], bodies))

        return self.op(tag, ["info", seq], slot, convert)

    def peek(self, owner: Owner, req: rq.Peek, slot: Slot) -> object:
        tag = wire.tag_of(req.queue)
        queue = req.queue
        args = ["peek", queue, req.state or False, req.limit, self.config.max_reply_bytes]

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.no_queue(queue)
            views = [wire.message_view(tag, v, bodies) for v in res[1]]
            return rp.PeekReply(messages=views, total=res[2])

        return self.op(tag, args, slot, convert)

    def ping(self, owner: Owner, req: rq.Ping | rq.Quit, slot: Slot) -> rp.Reply:
        return rp.OK

    def help(self, owner: Owner, req: rq.Help, slot: Slot) -> rp.Reply:
        return rp.HELP

    def cancel(self, owner: Owner, req: rq.Cancel, slot: Slot) -> object:
        targets = [w for w in owner.waits.with_rid(req.get) if w.waiting]
        if not targets:
            return rp.CancelReply(cancelled=0)

        unwaits = [self.b.waits.unwait(w) for w in targets]  # submitted now, in order

        async def run() -> rp.Reply:
            ended = await asyncio.gather(*unwaits)
            return rp.CancelReply(cancelled=sum(ended))

        return self.later(slot, run())
