"""The in-memory backend: the pure engine, its one timer, and what reaches a connection.

Owns: the clock and the single timer (armed at the engine's next deadline,
never one timer per message), a periodic timer that lets the engine forget
idle queues (``forget_idle``, ten times a pass), running each request through its handler
(handlers.py: a dict from request type to handler, typed replies out; the
protocol layer encodes them), delivering completed waiting GETs to their
connections, what the backend knows of its connections (owners.py), and
running long PURGE and REDRIVE a slice at a time (slices.py).
Every state change goes through the engine, which reports it to its
``Journal``. It logs what the engine reports (lease expiries, dead letters,
leases released by a disconnect) and times waiting GETs (``get_wait``, read
by the metrics endpoint).
Must never: block, sleep, or poll (it runs on the event loop), or encode wire bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import count
from typing import Final

import broker.backend.memory.views as views
from broker.backend.base import Replies, ReplySink, StatsProvider
from broker.backend.memory.handlers import Handlers
from broker.backend.memory.owners import Owner, Wait
from broker.backend.memory.slices import Batch, GoesOn, Running, run_slice
from broker.backend.receipts import ReceiptOps, received
from broker.config import Config
from broker.engine import DEAD_SUFFIX, Engine, Journal
from broker.engine.sliced import Delete, Sliced
from broker.errors import ShuttingDown, UnknownOp, WonderQError
from broker.histogram import WAIT_BOUNDS_S, Histogram
from broker.protocol import replies as rp
from broker.protocol import requests as rq

Clock = Callable[[], float]

log = logging.getLogger("wonderq.backend")

_NOT_APPLIED: Final = "the server is shutting down; the request was not applied"


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
        self.receipts = ReceiptOps(self.engine, config)
        self._clock = clock
        #: ``now`` without its call: the clock, or the loop's once started
        self._time: Clock = clock if clock is not None else self._not_started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # the forgetting of idle queues: ten looks per pass of forget_after_s, at most 1 s apart
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_every_s = min(1.0, config.forget_after_s / 10)
        self.started_at = 0.0
        self.started_wall = 0.0  # wall clock at start: tells one run from the next
        self._owner_ids = count(1)
        self.stats_providers: list[StatsProvider] = []
        self.owners: dict[Owner, None] = {}  # open connections, in opening order
        self._draining = False  # the server is stopping: execute applies nothing
        #: seconds each waiting GET waited (until served, or until its wait ran out)
        self.get_wait = Histogram(WAIT_BOUNDS_S)
        self._handlers = Handlers(self).table
        # batches waiting on a sliced job, and the handle of their job's next slice
        self._batches: dict[Batch, asyncio.Handle] = {}

    # -------------------------------------------------------------- lifecycle

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        assert self._loop is not None, "backend not started"
        return self._loop.time()

    def _not_started(self) -> float:
        raise AssertionError("backend not started")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._time = self._clock if self._clock is not None else self._loop.time
        self.started_at = self.now()
        self.started_wall = round(time.time(), 3)
        self._sweep = self._loop.call_later(self._sweep_every_s, self._on_sweep)

    async def drain(self) -> None:
        self._draining = True
        self.engine.end_all_waits()
        self._flush_deliveries()

    async def stop(self) -> None:
        if not self._draining:
            await self.drain()
        for batch, handle in self._batches.items():  # jobs still running: never answered
            handle.cancel()
            batch.future.cancel()
        self._batches.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def add_stats_provider(self, provider: StatsProvider) -> None:
        self.stats_providers.append(provider)

    def open(self, sink: ReplySink) -> object:
        owner = Owner(next(self._owner_ids), sink)
        self.owners[owner] = None
        if owner.room is not None:
            self.engine.set_room(self.now(), owner, owner.room())
        return owner

    def close(self, owner: object) -> None:
        released = self.engine.disconnect(self.now(), owner)
        if isinstance(owner, Owner):
            self.owners.pop(owner, None)
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

    def execute(
        self, owner: object, requests: Sequence[rq.AnyRequest]
    ) -> Replies | Awaitable[Replies]:
        """Each request's reply, in order; an awaitable of them when one of them is a
        PURGE, REDRIVE or DELETE that goes on in slices (slices.py): the rest wait for it."""
        if self._draining:
            raise ShuttingDown(_NOT_APPLIED)
        now = self._time()
        at = self._timer_at  # _catch_up(now), inlined: the hot path
        if at is not None and at <= now:
            self.engine.advance(now)
        # _run's loop, inlined: the hot path pays no extra call (continuations use _run)
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
            except GoesOn as going_on:
                return self._goes_on(owner, requests, replies, going_on.running)
        self._after_change()
        return replies

    def _goes_on(
        self, owner: object, requests: Sequence[rq.AnyRequest], replies: Replies, running: Running
    ) -> Awaitable[Replies]:
        """A job of this batch goes on in slices: the rest of the batch waits for it."""
        self._after_change()
        assert self._loop is not None
        batch = Batch(owner, requests, replies, running, self._loop.create_future())
        self._batches[batch] = self._loop.call_soon(self._next_slice, batch)
        return batch.future

    def _run(
        self, owner: object, requests: Sequence[rq.AnyRequest], replies: Replies, now: float
    ) -> Running | None:
        """Append each request's reply to ``replies``; stop at a job that goes on in
        slices (its ``Running``: raised by its handler, so the loop checks nothing more)."""
        handlers = self._handlers
        append = replies.append
        for request in requests:
            try:
                handler = handlers.get(type(request))
                if handler is None:
                    raise UnknownOp(f"{type(request).__name__} is not served by this backend")
                append(handler(owner, request, now))
            except WonderQError as exc:
                append(rp.error_reply(exc))
            except GoesOn as going_on:
                return going_on.running
        return None

    def sliced(self, job: Sliced | Delete, now: float, reply: Callable[[], rp.Reply]) -> rp.Reply:
        """A job's first slice, now: its reply if that finished it, else ``GoesOn``."""
        if run_slice(job, now):
            return reply()
        raise GoesOn(Running(job, reply))

    def _next_slice(self, batch: Batch) -> None:
        """The next slice of the job that holds ``batch``; once it ends, the rest of the batch."""
        running = batch.running
        assert running is not None and self._loop is not None
        now = self.now()
        self._catch_up(now)
        if run_slice(running.job, now):
            batch.replies[batch.slot] = running.reply()
            rest = batch.requests[batch.slot + 1 :]
            batch.running = None
            if self._draining:  # the server began to stop meanwhile: the rest is not applied
                batch.replies.extend([rp.error_reply(ShuttingDown(_NOT_APPLIED))] * len(rest))
            elif not batch.future.cancelled():  # (cancelled: its connection is gone)
                batch.running = self._run(batch.owner, rest, batch.replies, now)
                if batch.running is not None:  # another job in the same batch
                    batch.slot = len(batch.replies)
                    batch.replies.append(None)
        self._after_change()
        if batch.running is not None:
            self._batches[batch] = self._loop.call_soon(self._next_slice, batch)
            return
        del self._batches[batch]
        if not batch.future.done():
            batch.future.set_result(batch.replies)

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
        """What every change ends with: completed waiting GETs delivered, the timer armed
        at the engine's next deadline, its events logged. Asking for the next deadline
        also drops the stale entries at the top of the engine's heap (a lease batch
        whose messages were all acked holds them until then): every change asks."""
        engine = self.engine
        if engine.has_deliveries():
            self._flush_deliveries()
        self._arm_timer()
        events = engine.take_events()
        if events:
            log_events(events)

    def _flush_deliveries(self) -> None:
        """Write completed waiting GETs to their connections, and tell the engine how much
        room each one has left (which may complete more: written in the same loop)."""
        engine = self.engine
        deliveries = engine.take_deliveries()
        if not deliveries:
            return
        now = self.now()
        while deliveries:
            written: dict[Owner, None] = {}
            for delivery in deliveries:
                token = delivery.token
                assert isinstance(token, Wait)
                request, waiting_since = token
                owner = delivery.owner
                assert isinstance(owner, Owner)
                self.get_wait.observe(float(now - waiting_since))
                if type(request) is rq.Receive:
                    owner.sink.deliver(request, received(delivery.messages, now))
                else:
                    owner.sink.deliver(request, views.get_reply(delivery.messages))
                if owner.room is not None:
                    written[owner] = None
            for owner in written:  # the room its writes left (the engine only estimated)
                assert owner.room is not None
                engine.set_room(now, owner, owner.room())
            deliveries = engine.take_deliveries()

    def writable(self, owner: object) -> None:
        """``owner``'s connection passed its write high-water mark, or drained below its
        low one: its room changed (a waiting GET is served only with room)."""
        if isinstance(owner, Owner) and owner.room is not None:
            self.engine.set_room(self.now(), owner, owner.room())
            self._after_change()

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

    def _on_sweep(self) -> None:
        self.engine.forget_idle(self.now())
        assert self._loop is not None
        self._sweep = self._loop.call_later(self._sweep_every_s, self._on_sweep)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.engine.advance(self.now())
        self._after_change()


def log_events(events: dict[tuple[str, str], int]) -> None:
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
