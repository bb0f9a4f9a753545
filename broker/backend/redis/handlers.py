"""The op handlers of the Redis backend: a request in, library ops out, a reply back.

Owns: checking what the library cannot (limits of this node's config, id
formats), building each request's ops (a dict from request type to handler),
and turning the library's results into the typed replies the in-memory backend
gives, with the same error words. A handler returns a reply, ``None`` (a GET
now waiting), or ``PENDING`` (its slot is filled when Redis answers).
Must never: wait for Redis itself (``Calls`` does), or reply out of its slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

import msgspec

from broker import __version__
from broker.backend.redis import wire
from broker.backend.redis.calls import Op
from broker.backend.redis.timers import Wait
from broker.errors import BadRequest, TooLarge, UnknownOp, WonderQError
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.names import COUNTERS

if TYPE_CHECKING:
    from broker.backend.redis.backend import Owner, RedisBackend, Slot

Convert = Callable[[Any, list[bytes]], rp.Reply | None]

#: CONFIG's fields, as the library names them
_SETTING_NAMES: Final = {
    "lease": "lease",
    "max_attempts": "matt",
    "max_length": "mlen",
    "rate": "rate",
    "dedup_window": "dwin",
}


def _failed(res: Any) -> bool:
    return type(res) is list and res[0] == "e"


class Handlers:
    def __init__(self, backend: RedisBackend) -> None:
        from broker.backend.redis.backend import PENDING

        self.b = backend
        self.config = backend.config
        self.PENDING = PENDING
        self._table: dict[type, Callable[[Owner, Any, Slot], Any]] = {
            rq.Put: self.put,
            rq.Get: self.get,
            rq.Ack: self.ack,
            rq.Nack: self.nack,
            rq.Touch: self.touch,
            rq.Info: self.info,
            rq.Stats: self.stats,
            rq.Peek: self.peek,
            rq.Queues: self.queues,
            rq.Purge: self.purge,
            rq.Redrive: self.redrive,
            rq.Remove: self.remove,
            rq.Delete: self.delete,
            rq.Pause: self.pause,
            rq.Resume: self.resume,
            rq.Configure: self.configure,
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

    def _op(
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

    def _async(self, slot: Slot, work: Coroutine[Any, Any, rp.Reply]) -> object:
        async def run() -> None:
            try:
                reply: rp.Reply = await work
            except WonderQError as exc:
                reply = rp.error_reply(exc)
            slot.fill(reply)

        self.b._spawn(run())
        return self.PENDING

    def _max_batch(self, n: int, what: str) -> None:
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
        self.b.register(tag, [queue], lease=False)
        single = isinstance(req.body, msgspec.Raw)

        def convert(res: Any, out: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.queue_full(queue, res[2], res[3], res[4])
            ids = [wire.format_id(tag, s) for s in res[1]]
            if single:
                return rp.PutReply(id=ids[0], duplicate=True if res[2] else msgspec.UNSET)
            return rp.PutManyReply(ids=ids, duplicates=res[2])

        return self._op(tag, ["put", queue, items, 0], slot, convert, bodies, body_at=3)

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
        wait = self.b.new_wait(owner, req, tag) if req.wait > 0 else None
        lease = req.lease * 1000 if req.lease is not None else False
        wid = wait.wid if wait is not None else False
        args = ["get", req.queue, owner.token, req.max, lease, wid, self.config.max_reply_bytes]

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply | None:
            if res[0] == "wait":
                assert wait is not None
                if wait.waiting:  # (unless a later op of the same call served it)
                    self.b.timers.add_wait(wait)
                return None
            msgs = [wire.delivered(tag, m, bodies) for m in res[1]]
            if wait is not None:
                wait.waiting = False
                self.b.waits.pop(wait.wid, None)
                owner.waits.pop(wait.wid, None)
            owner.leased.update(m.id for m in msgs)
            return rp.GetReply(messages=msgs) if msgs else rp.EMPTY_GET

        return self._op(tag, args, slot, convert)

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

            return self._op(tag, ["ack", owner.token, [seq]], slot, convert)
        assert isinstance(req.ids, list)
        self._max_batch(len(req.ids), "ids")
        return self._async(slot, self._ack_many(owner, req.ids))

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
            *(self.b.acall(t, ["ack", owner.token, [s for _, s in by_tag[t]]]) for t in tags)
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
            if _failed(res):
                raise wire.lease_error(res[2], text)
            owner.leased.discard(text)
            return rp.NackReply(dead=True) if res[1] else rp.OK

        return self._op(tag, ["nack", owner.token, seq, req.delay * 1000], slot, convert)

    def touch(self, owner: Owner, req: rq.Touch, slot: Slot) -> object:
        text = req.id
        tag, seq = self._split(text)
        lease = req.lease if req.lease is not None else self.config.lease_s

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.lease_error(res[2], text)
            return rp.OK

        return self._op(tag, ["touch", owner.token, seq, lease * 1000], slot, convert)

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
            if _failed(res):
                raise wire.no_message(text)
            return rp.InfoReply(message=wire.message_view(tag, res[1], bodies))

        return self._op(tag, ["info", seq], slot, convert)

    def peek(self, owner: Owner, req: rq.Peek, slot: Slot) -> object:
        tag = wire.tag_of(req.queue)
        queue = req.queue
        args = ["peek", queue, req.state or False, req.limit, self.config.max_reply_bytes]

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.no_queue(queue)
            views = [wire.message_view(tag, v, bodies) for v in res[1]]
            return rp.PeekReply(messages=views, total=res[2])

        return self._op(tag, args, slot, convert)

    def stats(self, owner: Owner, req: rq.Stats, slot: Slot) -> object:
        return self._async(slot, self._stats(req))

    async def _stats(self, req: rq.Stats) -> rp.Reply:
        names = await self._queue_names()
        results = await asyncio.gather(*(self.b.acall(wire.tag_of(q), ["stats", q]) for q in names))
        queues: dict[str, rp.QueueStats] = {}
        totals = {"queues": 0, "messages": 0, "leased": 0, "bytes": 0, "dedup_evicted": 0}
        for name, (res, _) in zip(names, results, strict=True):
            if _failed(res):
                continue  # deleted since it was listed
            stats = self._queue_stats(res[1])
            queues[name] = stats
            totals["queues"] += 1
            totals["messages"] += stats.ready + stats.delayed + stats.leased
            totals["leased"] += stats.leased
            totals["bytes"] += stats.bytes
            totals["dedup_evicted"] += res[1][10]
        if req.queue is not None:
            if req.queue not in queues:
                raise wire.no_queue(req.queue)
            queues = {req.queue: queues[req.queue]}
        server: dict[str, Any] = {
            "version": __version__,
            "uptime": round(self.b.now() - self.b._started_at, 3),
        }
        server.update(totals)
        server.update(self.b.server_figures())
        server["cluster"] = await self._cluster()
        reply = rp.StatsReply(server=server, queues=queues)
        if req.connections:
            reply.connections = await self._connections()
        return reply

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
            settings=self._non_default(wire.settings(values)),
        )
        for name, n in zip(COUNTERS, counters, strict=True):
            setattr(out, name, n)
        return out

    def _non_default(self, s: rp.QueueSettings) -> rp.QueueSettings:
        c = self.config
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

    def _effective(self, s: rp.QueueSettings) -> rp.QueueSettings:
        c = self.config
        unset = msgspec.UNSET
        return rp.QueueSettings(
            lease=c.lease_s if s.lease is unset else s.lease,
            max_attempts=c.max_attempts if s.max_attempts is unset else s.max_attempts,
            max_length=c.max_queue_length if s.max_length is unset else s.max_length,
            rate=None if s.rate is unset else s.rate,
            dedup_window=c.dedup_window_s if s.dedup_window is unset else s.dedup_window,
        )

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
            *(self.b.acall(t, ["counts", tokens]) for t, tokens in by_tag.items())
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

    async def _queue_names(self) -> list[str]:
        res = await self.b.anode(["queues", []])
        names: list[str] = sorted(res[1])
        results = await asyncio.gather(
            *(self.b.acall(wire.tag_of(q), ["exists", [q]]) for q in names)
        )
        return [q for q, (r, _) in zip(names, results, strict=True) if r[1][0]]

    def queues(self, owner: Owner, req: rq.Queues, slot: Slot) -> object:
        async def names() -> rp.Reply:
            return rp.QueuesReply(queues=await self._queue_names())

        return self._async(slot, names())

    # ------------------------------------------------------------ manage

    def purge(self, owner: Owner, req: rq.Purge, slot: Slot) -> object:
        return self._op(
            wire.tag_of(req.queue),
            ["purge", req.queue],
            slot,
            lambda res, _: rp.PurgeReply(purged=res[1]),
        )

    def _sort_ids(
        self, queue: str, ids: list[str]
    ) -> tuple[str, list[str], dict[str, str], list[str]]:
        """(tag, seqs of ours to send, seq -> id text, ids that cannot be in ``queue``)."""
        self._max_batch(len(ids), "ids")
        tag = wire.tag_of(queue)
        seqs: list[str] = []
        texts: dict[str, str] = {}
        foreign: list[str] = []
        for text in ids:
            parts = wire.split_id(text)
            if parts is None or parts[0] != tag:
                foreign.append(text)
            else:
                seqs.append(parts[1])
                texts[parts[1]] = text
        return tag, seqs, texts, foreign

    def redrive(self, owner: Owner, req: rq.Redrive, slot: Slot) -> object:
        queue = req.queue
        tag = wire.tag_of(queue)
        self.b.register(tag, [queue], lease=False)
        if req.ids is None:
            return self._op(
                tag,
                ["redrive", queue, False],
                slot,
                lambda res, _: rp.RedriveReply(redriven=res[1]),
            )
        ids = req.ids
        tag, seqs, texts, foreign = self._sort_ids(queue, ids)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            leased, missing = _in_order(ids, texts, res[2], res[3], foreign)
            return rp.RedriveReply(redriven=res[1], leased=leased, not_found=missing)

        return self._op(tag, ["redrive", queue, seqs], slot, convert)

    def remove(self, owner: Owner, req: rq.Remove, slot: Slot) -> object:
        queue = req.queue
        ids = req.ids
        tag, seqs, texts, foreign = self._sort_ids(queue, ids)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.no_queue(queue)
            leased, missing = _in_order(ids, texts, res[2], res[3], foreign)
            return rp.RemoveReply(removed=res[1], leased=leased, not_found=missing)

        return self._op(tag, ["remove", queue, seqs], slot, convert)

    def delete(self, owner: Owner, req: rq.Delete, slot: Slot) -> object:
        queue = req.queue

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.no_queue(queue)
            return rp.DeleteReply(deleted=res[1])

        return self._op(wire.tag_of(queue), ["delete", queue, req.dead], slot, convert)

    def pause(self, owner: Owner, req: rq.Pause, slot: Slot) -> object:
        tag = wire.tag_of(req.queue)
        self.b.register(tag, [req.queue], lease=False)
        return self._op(tag, ["pause", req.queue], slot, lambda res, _: rp.OK)

    def resume(self, owner: Owner, req: rq.Resume, slot: Slot) -> object:
        queue = req.queue

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.no_queue(queue)
            return rp.OK

        return self._op(wire.tag_of(queue), ["resume", queue], slot, convert)

    def configure(self, owner: Owner, req: rq.Configure, slot: Slot) -> object:
        queue = req.queue
        tag = wire.tag_of(queue)
        changes: dict[str, Any] = {}
        for field in rq.SETTING_FIELDS:
            value = getattr(req, field)
            if value is not msgspec.UNSET:
                changes[_SETTING_NAMES[field]] = False if value is None else value
        if changes:
            self.b.register(tag, [queue], lease=False)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if _failed(res):
                raise wire.no_queue(queue)
            return rp.ConfigReply(settings=self._effective(wire.settings(res[1])))

        return self._op(tag, ["config", queue, changes], slot, convert)

    def ping(self, owner: Owner, req: rq.Ping | rq.Quit, slot: Slot) -> rp.Reply:
        return rp.OK

    def help(self, owner: Owner, req: rq.Help, slot: Slot) -> rp.Reply:
        return rp.HELP

    # ---------------------------------------------------------------- waits

    def cancel(self, owner: Owner, req: rq.Cancel, slot: Slot) -> object:
        targets = [w for w in owner.waits.with_rid(req.get) if w.waiting]
        if not targets:
            return rp.CancelReply(cancelled=0)

        async def run() -> rp.Reply:
            ended = await asyncio.gather(*(self._unwait(w) for w in targets))
            return rp.CancelReply(cancelled=sum(ended))

        return self._async(slot, run())

    async def _unwait(self, wait: Wait) -> bool:
        """End a waiting GET in Redis; True if it was still waiting (answered empty now)."""
        res, _ = await self.b.acall(wait.tag, ["unwait", wait.queue, wait.wid])
        if res[0] == "gone":
            self.b._answer(wait, [])
            return True
        if res[0] == "dlv" and wait.waiting:  # served meanwhile: those messages are its reply
            self.b._answer(wait, [wire.delivered(wait.tag, m, []) for m in res[1]])
        return False

    def expire_wait(self, wait: Wait) -> None:
        """A waiting GET's wait ran out on this node's clock."""
        if not wait.waiting:
            return

        async def run() -> None:
            try:
                await self._unwait(wait)
            except WonderQError as exc:
                if wait.waiting:
                    wait.waiting = False
                    self.b.waits.pop(wait.wid, None)
                    wait.owner.waits.pop(wait.wid, None)
                    if wait.owner.sink is not None:
                        wait.owner.sink.deliver(wait.request, rp.error_reply(exc))

        self.b._spawn(run())

    def collect(self, tag: str) -> None:
        """Take this node's deliveries stored on ``tag`` (its channel said there are some)."""

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if error is None:
                self.b.take_deliveries(tag, result[1], [])

        self.b.calls.submit(tag, Op(["collect"], [], done))


def _in_order(
    ids: list[str], texts: dict[str, str], leased: list[str], missing: list[str], foreign: list[str]
) -> tuple[list[str], list[str]]:
    """The ``leased`` and ``not_found`` lists of REDRIVE/REMOVE, in the order ids were given."""
    leased_ids = {texts[s] for s in leased}
    missing_ids = {texts[s] for s in missing} | set(foreign)
    return [t for t in ids if t in leased_ids], [t for t in ids if t in missing_ids]
