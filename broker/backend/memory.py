"""The in-memory backend: the pure engine, its one timer, and the op handlers.

Owns: the clock and the single timer (armed at the engine's next deadline,
never one timer per message), turning typed requests into engine calls (a dict
from request type to handler) and engine results into typed replies
(``broker.protocol.replies``; the protocol layer encodes them). Every state change goes
through the engine, which reports it to its ``Journal``. It logs what the engine
reports (lease expiries, dead letters, leases released by a disconnect) and
times waiting GETs (``get_wait``, read by the metrics endpoint).
Must never: block, sleep, or poll (it runs on the event loop), or encode wire bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from itertools import count
from operator import attrgetter
from typing import Any, Final, NamedTuple

import msgspec

from broker import __version__
from broker.backend.base import Replies, ReplySink, StatsProvider
from broker.backend.names import QueueIndex
from broker.backend.receipts import Receipt, ReceiptOps, received
from broker.config import Config
from broker.engine import (
    DEAD_SUFFIX,
    STATE_NAMES,
    AckedRecord,
    Effective,
    Engine,
    Journal,
    Message,
    NewMessage,
    NewMessageFields,
    Picked,
    Settings,
    State,
    format_id,
    parse_id,
)
from broker.engine.ids import parse_ids
from broker.errors import BadRequest, NotFound, ShuttingDown, UnknownOp, WonderQError
from broker.histogram import WAIT_BOUNDS_S, Histogram
from broker.protocol import replies as rp
from broker.protocol import requests as rq

Clock = Callable[[], float]
Handler = Callable[[Any, Any, float], rp.Reply | None]

log = logging.getLogger("wonderq.backend")

_PEEK_STATES: dict[str | None, State | None] = {
    None: None,
    "ready": State.READY,
    "delayed": State.DELAYED,
    "leased": State.LEASED,
    "dead": None,  # every message of <queue>.dead
}


_NOT_APPLIED: Final = "the server is shutting down; the request was not applied"
_DEDUP: Final = attrgetter("dedup")
_HEADERS: Final = attrgetter("headers")
#: the settings whose engine names differ from their wire names (durations end in _s)
_ENGINE_NAMES: Final = {"lease": "lease_s", "dedup_window": "dedup_window_s"}
_WIRE_NAMES: Final = {engine: wire for wire, engine in _ENGINE_NAMES.items()}


def _get_reply(msgs: list[Message]) -> rp.GetReply:
    if not msgs:
        return rp.EMPTY_GET
    delivered = rp.Delivered
    raw = msgspec.Raw
    unset = msgspec.UNSET
    return rp.GetReply(
        messages=[
            delivered(
                id=format(m.seq, "x"),
                queue=m.queue.name,
                body=raw(m.body),
                attempts=m.attempts,
                key=unset if m.key is None else m.key,
                headers=unset if m.headers is None else m.headers,
            )
            for m in msgs
        ]
    )


def _has_extras(items: list[rq.PutItem]) -> bool:
    """Whether any item of a batch PUT has a dedup id or headers (two C-level passes)."""
    return any(map(_DEDUP, items)) or any(map(_HEADERS, items))


def _settings_reply(values: Effective) -> rp.QueueSettings:
    """CONFIG's reply: every setting a queue works with (None: no limit)."""
    return rp.QueueSettings(
        lease=values.lease_s,
        max_attempts=values.max_attempts,
        max_length=values.max_length,
        rate=values.rate,
        dedup_window=values.dedup_window_s,
    )


def _overrides(settings: Settings) -> rp.QueueSettings:
    """STATS' ``settings``: only those that differ from the server's defaults."""
    wire = {_WIRE_NAMES.get(name, name): value for name, value in settings.overrides().items()}
    return rp.QueueSettings(**wire)


def _changes(req: rq.Configure) -> dict[str, Any]:
    """The settings a CONFIG sets (a value) or resets (None), by their engine names."""
    out: dict[str, Any] = {}
    for name in rq.SETTING_FIELDS:
        value = getattr(req, name)
        if value is not msgspec.UNSET:
            out[_ENGINE_NAMES.get(name, name)] = value
    return out


def _seq(id_text: str) -> int:
    seq = parse_id(id_text)
    if seq is None:
        raise NotFound(f"no message with id {id_text!r}")
    return seq


class _Wait(NamedTuple):
    """The engine's token for a waiting GET: the request, and when it began to wait."""

    request: rq.Get | rq.Receive
    since: float


class _Owner:
    """The opaque lease-owner token of one connection."""

    __slots__ = ("n", "sink")

    def __init__(self, n: int, sink: ReplySink) -> None:
        self.n = n
        self.sink = sink

    def __repr__(self) -> str:
        return f"Owner#{self.n}"

    @property
    def peer(self) -> str:
        """The connection's address (``?`` for a sink that does not say)."""
        return str(getattr(self.sink, "peer", "?"))


class MemoryBackend:
    def __init__(
        self,
        config: Config,
        *,
        first_seq: int,
        journal: Journal | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.engine = Engine(config, first_seq, journal)
        self._receipts = ReceiptOps(self.engine, config)
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._started_at = 0.0
        self._started_wall = 0.0  # wall clock at start: tells one run from the next
        self._owner_ids = count(1)
        self._stats_providers: list[StatsProvider] = []
        self._owners: dict[_Owner, None] = {}  # open connections, in opening order
        self._draining = False  # the server is stopping: execute applies nothing
        #: seconds each waiting GET waited (until served, or until its wait ran out)
        self.get_wait = Histogram(WAIT_BOUNDS_S)
        self._names = QueueIndex()  # the queues' names in order, for pages of STATS and QUEUES
        self._handlers: dict[type, Handler] = {
            rq.Put: self._put,
            rq.Get: self._get,
            rq.Ack: self._ack,
            rq.Nack: self._nack,
            rq.Touch: self._touch,
            rq.Info: self._info,
            rq.Stats: self._stats,
            rq.Peek: self._peek,
            rq.Queues: self._queues,
            rq.Purge: self._purge,
            rq.Redrive: self._redrive,
            rq.Remove: self._remove,
            rq.Delete: self._delete,
            rq.Pause: self._pause,
            rq.Resume: self._resume,
            rq.Configure: self._configure,
            rq.Ping: self._ping,
            rq.Quit: self._ping,
            rq.Cancel: self._cancel,
            rq.Help: lambda owner, req, now: rp.HELP,
            rq.Receive: self._receive,
            rq.AckReceipts: self._receipts.ack,
            rq.NackReceipts: self._receipts.nack,
            rq.TouchReceipts: self._receipts.touch,
            rq.ReleaseReceipts: self._receipts.release,
        }

    # -------------------------------------------------------------- lifecycle

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        assert self._loop is not None, "backend not started"
        return self._loop.time()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started_at = self.now()
        self._started_wall = round(time.time(), 3)

    async def drain(self) -> None:
        self._draining = True
        self.engine.end_all_waits()
        self._flush_deliveries()

    async def stop(self) -> None:
        if not self._draining:
            await self.drain()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def add_stats_provider(self, provider: StatsProvider) -> None:
        self._stats_providers.append(provider)

    def open(self, sink: ReplySink) -> object:
        owner = _Owner(next(self._owner_ids), sink)
        self._owners[owner] = None
        return owner

    def close(self, owner: object) -> None:
        released = self.engine.disconnect(self.now(), owner)
        if isinstance(owner, _Owner):
            self._owners.pop(owner, None)
            if released:
                log.info(
                    "%d lease(s) released: %s disconnected",
                    released,
                    owner.peer,
                    extra={
                        "event": "released_on_disconnect",
                        "peer": owner.peer,
                        "count": released,
                    },
                )
        self._after_change()

    def holds(self, owner: object) -> bool:
        return self.engine.holds(owner)

    # -------------------------------------------------------------- execution

    def execute(self, owner: object, requests: Sequence[rq.AnyRequest]) -> Replies:
        if self._draining:
            raise ShuttingDown(_NOT_APPLIED)
        now = self.now()
        self._catch_up(now)
        handlers = self._handlers
        replies: Replies = []
        append = replies.append
        for request in requests:
            try:
                handler = handlers.get(type(request))
                if handler is None:
                    raise UnknownOp(f"{type(request).__name__} is not served by this backend")
                append(handler(owner, request, now))
            except WonderQError as exc:
                append(rp.error_reply(exc))
        self._after_change()
        return replies

    def settle(self) -> None:
        """Deliver completed waiting GETs and re-arm the timer, after the engine
        was changed directly (e.g. messages restored from a durable log)."""
        self._after_change()

    def _catch_up(self, now: float) -> None:
        """Fire deadlines already due, so a batch never sees a lease past its deadline.

        The timer may fire a little late (a busy loop); without this an ACK
        arriving after the deadline but before the timer would still count.
        The timer's instant stands for the engine's next deadline: every change
        ends in ``_arm_timer``, which arms it at that deadline or earlier (and a
        timer is unarmed only while nothing is timed), so this costs no heap look.
        """
        at = self._timer_at
        if at is not None and at <= now:
            self.engine.advance(now)

    def _after_change(self) -> None:
        self._flush_deliveries()
        self._arm_timer()
        events = self.engine.take_events()
        if events:
            _log_events(events)

    def _flush_deliveries(self) -> None:
        deliveries = self.engine.take_deliveries()
        if not deliveries:
            return
        now = self.now()
        for delivery in deliveries:
            token = delivery.token
            assert isinstance(token, _Wait)
            request, waiting_since = token
            owner = delivery.owner
            assert isinstance(owner, _Owner)
            self.get_wait.observe(float(now - waiting_since))
            if type(request) is rq.Receive:
                owner.sink.deliver(request, received(delivery.messages, now))
            else:
                owner.sink.deliver(request, _get_reply(delivery.messages))

    def _arm_timer(self) -> None:
        at = self.engine.next_deadline()
        if at is None:
            return
        if self._timer is not None:
            assert self._timer_at is not None
            if self._timer_at <= at:
                return  # armed early enough; an early wake-up just re-arms
            self._timer.cancel()
        loop = self._loop
        assert loop is not None
        self._timer_at = at
        self._timer = loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.engine.advance(self.now())
        self._after_change()

    # --------------------------------------------------------------- handlers

    def _put(self, owner: object, req: rq.Put, now: float) -> rp.PutReply | rp.PutManyReply:
        if isinstance(req.body, msgspec.Raw):
            item = NewMessage(bytes(req.body), req.key, req.delay, req.priority, req.max_attempts)
            if req.dedup is None and not req.headers:
                (seq,) = self.engine.put(now, req.queue, (item,))
                return rp.PutReply(id=format(seq, "x"))
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
        if not _has_extras(messages):
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

    def _get(self, owner: object, req: rq.Get, now: float) -> rp.GetReply | None:
        if req.max > self.config.max_get:
            raise BadRequest(f"`max` is {req.max}; the limit (max-get) is {self.config.max_get}")
        token = _Wait(req, now) if req.wait > 0 else None  # only a waiting GET needs one
        msgs = self.engine.get(now, req.queue, owner, req.max, req.lease, req.wait, token=token)
        if msgs is None:
            return None
        return _get_reply(msgs)

    def _receive(self, owner: object, req: rq.Receive, now: float) -> rp.ReceiveReply | None:
        token = _Wait(req, now) if req.wait > 0 else None
        return self._receipts.receive(owner, req, now, token)

    def _ack(self, owner: object, req: rq.Ack, now: float) -> rp.Ok | rp.AckManyReply:
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

    def _nack(self, owner: object, req: rq.Nack, now: float) -> rp.Ok | rp.NackReply:
        if self.engine.nack(now, owner, _seq(req.id), req.delay):
            return rp.NackReply(dead=True)
        return rp.OK

    def _touch(self, owner: object, req: rq.Touch, now: float) -> rp.Ok:
        self.engine.touch(now, owner, _seq(req.id), req.lease)
        return rp.OK

    def _info(self, owner: object, req: rq.Info, now: float) -> rp.InfoReply:
        found = self.engine.lookup(_seq(req.id))
        if found is None:
            raise NotFound(f"no message with id {req.id!r}")
        if isinstance(found, AckedRecord):
            acked = rp.MessageView(
                id=req.id, queue=found.queue.name, state="acked", attempts=found.attempts
            )
            return rp.InfoReply(message=acked)
        return rp.InfoReply(message=describe(found, now))

    def _queue_page(self, req: rq.Stats | rq.Queues) -> tuple[list[str], str | None]:
        """The names of a STATS or QUEUES page, and the cursor of the next one."""
        # the engine's table, read only: it has no index of names of its own yet
        table = self.engine._queues
        limit = req.limit if req.limit is not None else rq.LIST_LIMIT_DEFAULT
        return self._names.page(table, req.prefix, req.cursor, limit)

    def _stats(self, owner: object, req: rq.Stats, now: float) -> rp.StatsReply:
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
        server: dict[str, Any] = {
            "version": __version__,
            "uptime": round(now - self._started_at, 3),
            "started_at": self._started_wall,
        }
        server.update(engine.totals())
        server.update(engine.dedup_totals())
        for provider in self._stats_providers:
            server.update(provider())
        reply = rp.StatsReply(
            server=server,
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
                for o in self._owners
            ]
        if after is not None:
            reply.next = after
        return reply

    def _queue_stats(self, name: str, figures: dict[str, Any]) -> rp.QueueStats:
        stats = msgspec.convert(figures, rp.QueueStats)
        q = self.engine.find_queue(name)
        assert q is not None
        stats.settings = _overrides(q.settings)
        return stats

    def _peek(self, owner: object, req: rq.Peek, now: float) -> rp.PeekReply:
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
            if out and budget < len(msg.body):
                break  # like GET: at least one message, then at most max_reply_bytes of bodies
            budget -= len(msg.body)
            seen = describe(msg, now)
            if isinstance(msg.owner, _Owner | Receipt):
                seen.holder = msg.owner.peer
            out.append(seen)
        if q is None:
            total = 0
        elif state is None:
            total = q.size
        else:
            total = {State.READY: q.n_ready, State.DELAYED: q.n_delayed}.get(state, q.n_leased)
        return rp.PeekReply(messages=out, total=total)

    def _queues(self, owner: object, req: rq.Queues, now: float) -> rp.QueuesReply:
        names, after = self._queue_page(req)
        return rp.QueuesReply(queues=names, next=msgspec.UNSET if after is None else after)

    def _purge(self, owner: object, req: rq.Purge, now: float) -> rp.PurgeReply:
        return rp.PurgeReply(purged=self.engine.purge(now, req.queue))

    def _redrive(self, owner: object, req: rq.Redrive, now: float) -> rp.RedriveReply:
        if req.ids is None:
            return rp.RedriveReply(redriven=self.engine.redrive(now, req.queue))
        seqs, unparsable = self._named(req.ids)
        picked = self.engine.redrive_ids(now, req.queue, seqs)
        return rp.RedriveReply(
            redriven=picked.done,
            leased=[format_id(s) for s in picked.leased],
            not_found=_not_found(picked, unparsable),
        )

    def _remove(self, owner: object, req: rq.Remove, now: float) -> rp.RemoveReply:
        seqs, unparsable = self._named(req.ids)
        picked = self.engine.remove(now, req.queue, seqs)
        return rp.RemoveReply(
            removed=picked.done,
            leased=[format_id(s) for s in picked.leased],
            not_found=_not_found(picked, unparsable),
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

    def _delete(self, owner: object, req: rq.Delete, now: float) -> rp.DeleteReply:
        return rp.DeleteReply(deleted=self.engine.delete(now, req.queue, req.dead))

    def _pause(self, owner: object, req: rq.Pause, now: float) -> rp.Ok:
        self.engine.pause(now, req.queue)
        return rp.OK

    def _resume(self, owner: object, req: rq.Resume, now: float) -> rp.Ok:
        self.engine.resume(now, req.queue)
        return rp.OK

    def _configure(self, owner: object, req: rq.Configure, now: float) -> rp.ConfigReply:
        values = self.engine.configure(now, req.queue, _changes(req))
        return rp.ConfigReply(settings=_settings_reply(values))

    def _ping(self, owner: object, req: rq.Ping | rq.Quit, now: float) -> rp.Ok:
        return rp.OK

    def _cancel(self, owner: object, req: rq.Cancel, now: float) -> rp.CancelReply:
        def is_target(token: object) -> bool:
            return isinstance(token, _Wait) and token.request.rid == req.get

        return rp.CancelReply(cancelled=self.engine.cancel_waits(owner, is_target))


def _not_found(picked: Picked, unparsable: list[str]) -> list[str]:
    return [format_id(s) for s in picked.not_found] + unparsable


def _log_events(events: dict[tuple[str, str], int]) -> None:
    for (queue, event), n in events.items():
        if event == "expired":
            log.info(
                "%d lease(s) expired in %s",
                n,
                queue,
                extra={"event": "lease_expired", "queue": queue, "count": n},
            )
        else:
            log.warning(
                "%d message(s) dead-lettered from %s to %s%s",
                n,
                queue,
                queue,
                DEAD_SUFFIX,
                extra={"event": "dead_lettered", "queue": queue, "count": n},
            )


def describe(msg: Message, now: float) -> rp.MessageView:
    """INFO's view of a held message (never changes state)."""
    state = STATE_NAMES[msg.state]
    if msg.queue.is_dead and msg.state == State.READY:
        state = "dead"
    out = rp.MessageView(
        id=format_id(msg.seq),
        queue=msg.queue.name,
        state=state,  # type: ignore[arg-type]  # one of MessageState
        attempts=msg.attempts,
        max_attempts=msg.max_attempts,
        priority=msg.priority,
        age=round(now - msg.put_at, 6),
        body=msgspec.Raw(msg.body),
    )
    if msg.key is not None:
        out.key = msg.key
    if msg.headers is not None:
        out.headers = msg.headers
    if msg.state == State.LEASED:
        out.lease_left = round(max(0.0, msg.due_at - now), 6)
    elif msg.state == State.DELAYED:
        out.delay_left = round(max(0.0, msg.due_at - now), 6)
    return out
