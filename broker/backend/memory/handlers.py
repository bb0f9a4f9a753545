"""The in-memory backend's op handlers: a typed request in, engine calls, a typed reply out.

Owns: one handler per request type (``Handlers.table``, a dict from type to
handler): checking what the engine leaves to the backend (``max-get``,
``max-batch`` of ids, id formats), calling the engine with the request's
values and ``now``, and building the reply (views.py). A handler returns a
reply, or ``None`` for a GET now waiting (its reply is delivered later); a
PURGE or REDRIVE that goes on in slices raises ``GoesOn`` (slices.py).
Must never: read the clock (``now`` is passed in), touch a connection, or
encode wire bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec

import broker.backend.memory.views as views
from broker import __version__
from broker.backend.memory.owners import Owner, Wait
from broker.backend.receipts import Receipt
from broker.engine import (
    DEAD_SUFFIX,
    AckedRecord,
    NewMessageFields,
    State,
    format_id,
    parse_id,
)
from broker.engine.ids import parse_ids
from broker.engine.message import headers_bytes
from broker.errors import BadRequest, NotFound
from broker.protocol import replies as rp
from broker.protocol import requests as rq

if TYPE_CHECKING:
    from broker.backend.memory.backend import MemoryBackend

Handler = Callable[[Any, Any, float], rp.Reply | None]

_PEEK_STATES: Final[dict[str | None, State | None]] = {
    None: None,
    "ready": State.READY,
    "delayed": State.DELAYED,
    "leased": State.LEASED,
    "dead": None,  # every message of <queue>.dead
}


#: builds a ``Wait`` from a tuple of its fields in C (a NamedTuple's ``__new__`` is Python)
_new_wait: Final = tuple.__new__


def _seq(id_text: str) -> int:
    seq = parse_id(id_text)
    if seq is None:
        raise NotFound(f"no message with id {id_text!r}")
    return seq


class Handlers:
    """The handlers of one ``MemoryBackend`` (its engine, config and figures)."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.b = backend
        self.engine = backend.engine
        self.config = backend.config
        receipts = backend.receipts
        self.table: dict[type, Handler] = {
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
            rq.Cancel: self.cancel,
            rq.Help: lambda owner, req, now: rp.HELP,
            rq.Receive: self.receive,
            rq.AckReceipts: receipts.ack,
            rq.NackReceipts: receipts.nack,
            rq.TouchReceipts: receipts.touch,
            rq.ReleaseReceipts: receipts.release,
        }

    # ---------------------------------------------------------------- producer

    def put(self, owner: object, req: rq.Put, now: float) -> rp.PutReply | rp.PutManyReply:
        body = req.body
        if type(body) is msgspec.Raw:
            # a plain tuple of NewMessage's fields: a NamedTuple costs a Python call
            item = (bytes(body), req.key, req.delay, req.priority, req.max_attempts)
            if req.dedup is None and not req.headers:
                (seq,) = self.engine.put(now, req.queue, (item,))
                return rp.PutReply(id=f"{seq:x}")  # format_id's spelling, without its call
            (seq,), dup = self.engine.put_extended(
                now,
                req.queue,
                (item,),
                None if req.dedup is None else (req.dedup,),
                (req.headers,) if req.headers else None,
            )
            return rp.PutReply(id=format(seq, "x"), duplicate=True if dup else msgspec.UNSET)
        return self._put_batch(req, now)

    def _put_batch(self, req: rq.Put, now: float) -> rp.PutManyReply:
        messages = req.messages
        assert isinstance(messages, list)
        if len(messages) > self.config.max_batch:
            raise BadRequest(
                f"`messages` holds {len(messages)} messages; "
                f"the limit (max-batch) is {self.config.max_batch}"
            )
        items: list[NewMessageFields] = [
            (bytes(m.body), m.key, m.delay, m.priority, m.max_attempts) for m in messages
        ]
        duplicates: list[int] = []
        if not views.has_extras(messages):
            seqs = self.engine.put(now, req.queue, items)
        else:
            dedups = [m.dedup for m in messages]
            headers = [m.headers or None for m in messages]
            seqs, duplicates = self.engine.put_extended(
                now,
                req.queue,
                items,
                dedups if any(dedups) else None,
                headers if any(headers) else None,
            )
        # one format over the batch (a quarter of the time of one format per id)
        ids = ("%x," * len(seqs))[:-1] % tuple(seqs)
        return rp.PutManyReply(ids=ids.split(","), duplicates=duplicates)

    # ---------------------------------------------------------------- consumer

    def get(self, owner: object, req: rq.Get, now: float) -> rp.GetReply | None:
        if req.max > self.config.max_get:
            raise BadRequest(f"`max` is {req.max}; the limit (max-get) is {self.config.max_get}")
        if req.wait > 0:  # a token for its reply, and its rid for a CANCEL
            wait = _new_wait(Wait, (req, now))  # Wait(req, now) without its Python __new__
            msgs = self.engine.get(
                now, req.queue, owner, req.max, req.lease, req.wait, wait, None, req.rid
            )
        else:
            msgs = self.engine.get(now, req.queue, owner, req.max, req.lease)
        if msgs is None:
            return None
        return views.get_reply(msgs)

    def receive(self, owner: object, req: rq.Receive, now: float) -> rp.ReceiveReply | None:
        token = Wait(req, now) if req.wait > 0 else None
        return self.b.receipts.receive(owner, req, now, token)

    def ack(self, owner: object, req: rq.Ack, now: float) -> rp.Ok | rp.AckManyReply:
        if isinstance(req.id, str):
            self.engine.ack(now, owner, _seq(req.id))
            return rp.OK
        assert isinstance(req.ids, list)
        seqs, unparsable = self._named(req.ids)
        result = self.engine.ack_many(now, owner, seqs)
        return rp.AckManyReply(
            acked=result.acked,
            not_leased=[format_id(s) for s in result.not_leased],
            not_found=[format_id(s) for s in result.not_found] + unparsable,
        )

    def nack(self, owner: object, req: rq.Nack, now: float) -> rp.Ok | rp.NackReply:
        if self.engine.nack(now, owner, _seq(req.id), req.delay):
            return rp.NackReply(dead=True)
        return rp.OK

    def touch(self, owner: object, req: rq.Touch, now: float) -> rp.Ok:
        self.engine.touch(now, owner, _seq(req.id), req.lease)
        return rp.OK

    def cancel(self, owner: object, req: rq.Cancel, now: float) -> rp.CancelReply:
        return rp.CancelReply(cancelled=self.engine.cancel_waits(owner, req.get))

    def ping(self, owner: object, req: rq.Ping | rq.Quit, now: float) -> rp.Ok:
        return rp.OK

    # ----------------------------------------------------------------- inspect

    def info(self, owner: object, req: rq.Info, now: float) -> rp.InfoReply:
        found = self.engine.lookup(_seq(req.id))
        if found is None:
            raise NotFound(f"no message with id {req.id!r}")
        if isinstance(found, AckedRecord):
            acked = rp.MessageView(
                id=req.id, queue=found.queue, state="acked", attempts=found.attempts
            )
            return rp.InfoReply(message=acked)
        return rp.InfoReply(message=views.describe(found, now))

    def _queue_page(self, req: rq.Stats | rq.Queues) -> tuple[list[str], str | None]:
        """The names of a STATS or QUEUES page, and the cursor of the next one."""
        limit = req.limit if req.limit is not None else rq.LIST_LIMIT_DEFAULT
        return self.engine.queue_page(req.prefix, req.cursor, limit)

    def stats(self, owner: object, req: rq.Stats, now: float) -> rp.StatsReply:
        engine = self.engine
        after: str | None = None
        if req.queue is not None:
            q = engine.find_queue(req.queue)
            if q is None:
                raise NotFound(f"no queue named {req.queue!r}")
            queues = {q.name: engine.queue_stats(q, now)}
        else:
            names, after = self._queue_page(req)
            found = ((name, engine.find_queue(name)) for name in names)
            queues = {name: engine.queue_stats(q, now) for name, q in found if q is not None}
        reply = rp.StatsReply(
            server=self._server_figures(now),
            queues={name: self._queue_stats(name, figures) for name, figures in queues.items()},
        )
        if req.connections:
            reply.connections = [
                rp.ConnectionView(
                    address=o.peer,
                    leases=engine.leases_of(o),
                    waiting=engine.waits_of(o),
                    requests=getattr(o.sink, "requests_served", 0),
                )
                for o in self.b.owners
            ]
        if after is not None:
            reply.next = after
        return reply

    def _server_figures(self, now: float) -> dict[str, Any]:
        server: dict[str, Any] = {
            "version": __version__,
            "uptime": round(now - self.b.started_at, 3),
            "started_at": self.b.started_wall,
        }
        server.update(self.engine.totals())
        server["forgotten_queues"] = self.engine.forgotten
        server["memory"] = self.engine.footprint()
        server.update(self.engine.dedup_totals())
        for provider in self.b.stats_providers:
            server.update(provider())
        return server

    def _queue_stats(self, name: str, figures: dict[str, Any]) -> rp.QueueStats:
        stats = msgspec.convert(figures, rp.QueueStats)
        q = self.engine.find_queue(name)
        assert q is not None
        stats.settings = views.overrides(q.settings)
        return stats

    def peek(self, owner: object, req: rq.Peek, now: float) -> rp.PeekReply:
        engine = self.engine
        name = req.queue
        if engine.find_queue(name) is None:
            raise NotFound(f"no queue named {name!r}")
        if req.state == "dead":
            name += DEAD_SUFFIX
        q = engine.find_queue(name)
        state = _PEEK_STATES[req.state]
        msgs = engine.peek(name, state, req.limit)
        out: list[rp.MessageView] = []
        budget = self.config.max_reply_bytes
        for msg in msgs:
            size = len(msg.body) + headers_bytes(msg)
            if out and budget < size:
                break  # like GET: at least one message, then max_reply_bytes of bodies and headers
            budget -= size
            seen = views.describe(msg, now)
            if isinstance(msg.owner, Owner | Receipt):
                seen.holder = msg.owner.peer
            out.append(seen)
        if q is None:
            total = 0
        elif state is None:
            total = q.size
        else:
            total = {State.READY: q.n_ready, State.DELAYED: q.n_delayed}.get(state, q.n_leased)
        return rp.PeekReply(messages=out, total=total)

    def queues(self, owner: object, req: rq.Queues, now: float) -> rp.QueuesReply:
        names, after = self._queue_page(req)
        return rp.QueuesReply(queues=names, next=msgspec.UNSET if after is None else after)

    # ------------------------------------------------------------------ manage

    def purge(self, owner: object, req: rq.Purge, now: float) -> rp.Reply:
        job = self.engine.purging(req.queue)
        return self.b.sliced(job, now, lambda: rp.PurgeReply(purged=job.count))

    def redrive(self, owner: object, req: rq.Redrive, now: float) -> rp.Reply:
        if req.ids is None:
            job = self.engine.redriving(req.queue)
            return self.b.sliced(job, now, lambda: rp.RedriveReply(redriven=job.count))
        seqs, unparsable = self._named(req.ids)
        picked = self.engine.redrive_ids(now, req.queue, seqs)
        return rp.RedriveReply(
            redriven=picked.done,
            leased=[format_id(s) for s in picked.leased],
            not_found=views.not_found(picked, unparsable),
        )

    def remove(self, owner: object, req: rq.Remove, now: float) -> rp.RemoveReply:
        seqs, unparsable = self._named(req.ids)
        picked = self.engine.remove(now, req.queue, seqs)
        return rp.RemoveReply(
            removed=picked.done,
            leased=[format_id(s) for s in picked.leased],
            not_found=views.not_found(picked, unparsable),
        )

    def _named(self, ids: list[str]) -> tuple[list[int], list[str]]:
        """The sequence numbers of the ids a batch names (at most max-batch), and the
        ids that cannot be ours (each is then not found)."""
        if len(ids) > self.config.max_batch:
            raise BadRequest(
                f"`ids` holds {len(ids)} ids; the limit (max-batch) is {self.config.max_batch}"
            )
        seqs = parse_ids(ids)
        unparsable: list[str] = []
        if seqs is None:  # some id cannot be one of ours: sort them out one by one
            seqs = []
            for text in ids:
                seq = parse_id(text)
                if seq is None:
                    unparsable.append(text)
                else:
                    seqs.append(seq)
        return seqs, unparsable

    def delete(self, owner: object, req: rq.Delete, now: float) -> rp.Reply:
        job = self.engine.deleting(req.queue, req.dead)
        return self.b.sliced(job, now, lambda: rp.DeleteReply(deleted=job.count))

    def pause(self, owner: object, req: rq.Pause, now: float) -> rp.Ok:
        self.engine.pause(now, req.queue)
        return rp.OK

    def resume(self, owner: object, req: rq.Resume, now: float) -> rp.Ok:
        self.engine.resume(now, req.queue)
        return rp.OK

    def configure(self, owner: object, req: rq.Configure, now: float) -> rp.ConfigReply:
        values = self.engine.configure(now, req.queue, views.changes(req))
        return rp.ConfigReply(settings=views.settings_reply(values))
