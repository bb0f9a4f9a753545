"""The consumer loop and the worker helper built on it (asyncio client only).

Owns: keeping up to ``concurrency`` messages leased, long-polling for more,
touching leases before they run out, settling messages for ``run_worker``,
getting the connection back when it is lost, and stopping cleanly (``stop``,
cancelling, or SIGINT/SIGTERM). Must never: lose a message on the way out
(every message it leased and did not settle is released with ``NACK`` when it
stops), poll, or leave a task it created running after it returns.

Stopping cancels the consumer's waiting GET: the client sends ``CANCEL`` for
it before any ``NACK`` of the messages it releases, so the broker cannot hand
them straight back to that GET (which nobody reads: an attempt burned).
Messages the GET got before the cancel took effect are released too.

Leases belong to a connection. If the connection is lost, the broker releases
every message this consumer held: their handlers' ``ack`` then fails and the
messages are delivered again (possibly elsewhere). With ``reconnect`` (the
default), the consumer dials again with backoff (``reconnect.Redial``: at most
the client's ``reconnect_timeout`` per outage) and carries on. Work is
at-least-once; make handlers idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Protocol

from . import signals
from .errors import ConnectFailed, ConnectionLost, ShuttingDown, WonderQError
from .message import Message
from .reconnect import Redial

logger = logging.getLogger("wonderq")

Handler = Callable[[Message], Awaitable[object]]
"""A ``run_worker`` handler: return to ack the message, raise to retry it later."""

DEFAULT_STOP_SIGNALS: Final = signals.STOP_SIGNALS
MAX_GET: Final = 1000
"""Most messages one GET asks for: the protocol's default ``--max-get``."""


def exponential_backoff(attempts: int) -> float:
    """Default retry delay after a failed attempt: 1 s, 2 s, 4 s, ... at most 300 s."""
    return float(min(300, 2 ** max(0, min(attempts - 1, 16))))


class MessageSource(Protocol):
    """What a consumer needs from its client."""

    host: str
    port: int

    @property
    def reconnect_timeout(self) -> float: ...

    async def get(
        self, queue: str, *, max: int = 1, lease: float | None = None, wait: float = 0
    ) -> list[Message]: ...

    async def _connection(self, redial: Redial | None = None) -> Any: ...


class Consumer:
    """Leases messages from one queue, at most ``concurrency`` unsettled at a time.

    Iterate it for messages; each must then be settled (``ack``/``nack``),
    which frees its slot. While a message is unsettled, its lease is touched
    whenever half of it has run, so slow work does not lose it. ``stop()``
    ends the iteration; ``aclose()`` stops and releases every unsettled message.

    ``reconnect``: when the connection is lost, dial again (with backoff, for
    up to the client's ``reconnect_timeout``) and carry on; otherwise raise
    ``ConnectionLost``. ``stop_signals``: the first of them to arrive stops the
    iteration (a second one then gets its usual handler); see ``signals``.
    """

    def __init__(
        self,
        source: MessageSource,
        queue: str,
        *,
        concurrency: int,
        lease: float,
        wait: float,
        reconnect: bool = True,
        stop_signals: Iterable[signal.Signals] = (),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease <= 0:
            raise ValueError("lease must be greater than 0 seconds")
        if wait <= 0:
            raise ValueError("wait must be greater than 0 seconds (a consumer long-polls)")
        self._source = source
        self._queue = queue
        self._concurrency = concurrency
        self._lease = lease
        self._wait = wait
        self._reconnect = reconnect
        self._stop_signals = tuple(stop_signals)
        self._listening: signals.Listening | None = None
        self._outage: Redial | None = None  # set from a lost connection until a GET gets through
        self._buffer: deque[Message] = deque()
        self._unsettled: dict[str, Message] = {}
        self._slot_freed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._touch_needed = asyncio.Event()
        self._toucher: asyncio.Task[None] | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def unsettled(self) -> int:
        """Messages leased by this consumer and not acked or nacked yet."""
        return len(self._unsettled)

    def stop(self) -> None:
        """Stop fetching; iteration ends (messages not yet handed out are kept for ``aclose``)."""
        self._stopped.set()

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        if self._toucher is None and not self._closed:
            self._toucher = asyncio.create_task(self._touch_leases(), name="wonderq lease toucher")
            self._listening = signals.listen(
                self._stop_signals, self._on_signal, asyncio.get_running_loop()
            )
        while not self._buffer or self._stopped.is_set():
            if self._stopped.is_set() or self._closed:
                raise StopAsyncIteration
            free = min(self._concurrency - len(self._unsettled), MAX_GET)
            if free <= 0:
                self._slot_freed.clear()
                await self._until(self._slot_freed.wait())
                continue
            self._fetching = asyncio.create_task(self._fetch(free), name="wonderq GET")
            try:
                await self._until(self._fetching)
            except (ConnectionLost, ShuttingDown) as exc:  # a restart: lost, or about to be
                if not self._reconnect or isinstance(exc, ConnectFailed):  # that outage is over
                    raise
                await self._recover(exc)
                continue
            finally:
                self._fetching = None
            self._outage = None
            self._touch_needed.set()
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop, and release (``NACK``) every message leased and not settled.

        A GET still waiting on the server is cancelled first (``CANCEL`` goes
        out before the NACKs), and what it got before that is released too.
        The NACKs are queued, not awaited.
        """
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._listening is not None:
            self._listening.close()
        if self._fetching is not None:  # iterated by another task: end its GET first
            self._fetching.cancel()
            await asyncio.wait({self._fetching})
        if self._toucher is not None:
            self._toucher.cancel()
            await asyncio.wait({self._toucher})
            if not self._toucher.cancelled() and self._toucher.exception() is not None:
                logger.error("lease toucher failed", exc_info=self._toucher.exception())
        leftovers = list(self._unsettled.values())
        self._buffer.clear()
        for message in leftovers:
            message._release()

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _fetch(self, free: int) -> None:
        """One GET; what it leases is this consumer's (to hand out, or release) at once."""
        messages = await self._source.get(self._queue, max=free, lease=self._lease, wait=self._wait)
        for message in messages:
            message._on_settled = self._on_settled
            self._unsettled[message.id] = message
            self._buffer.append(message)

    async def _until(self, awaitable: Awaitable[Any]) -> None:
        """Await ``awaitable``; if ``stop()`` comes first, cancel it instead."""
        work = asyncio.ensure_future(awaitable)
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not work.done():
                work.cancel()  # a GET: the connection sends CANCEL, releases a late delivery
            await asyncio.wait({work, stopped})
        if not work.cancelled():
            work.result()  # raises what the work raised

    def _on_settled(self, message: Message) -> None:
        self._unsettled.pop(message.id, None)
        self._slot_freed.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.warning(
            "received %s: the consumer of %r takes no more messages (%s again to interrupt)",
            sig.name,
            self._queue,
            sig.name,
        )
        self.stop()
        if self._listening is not None:
            self._listening.close()  # the next one gets the usual handler

    async def _recover(self, exc: ConnectionLost | ShuttingDown) -> None:
        """The connection is lost: forget its leases, then get a connection back (or raise)."""
        self._forget_leases(exc)
        loop = asyncio.get_running_loop()
        if self._outage is None:
            where = f"{self._source.host}:{self._source.port}"
            self._outage = Redial(where, now=loop.time(), budget_s=self._source.reconnect_timeout)
        else:  # lost again before a GET got through: count it as a failed attempt
            await self._until(asyncio.sleep(self._outage.failed(exc, loop.time())))
        if not self._stopped.is_set():
            await self._until(self._source._connection(self._outage))

    def _forget_leases(self, exc: ConnectionLost | ShuttingDown) -> None:
        """Drop what the lost connection held: the broker released it all.

        Messages not handed out yet are forgotten; those handed out keep their
        slot until settled (their ``ack``/``nack`` raise ``ConnectionLost``),
        and are no longer touched.
        """
        for message in self._buffer:
            self._unsettled.pop(message.id, None)
            message._on_settled = None
        held = len(self._buffer) + len(self._unsettled)
        self._buffer.clear()
        for message in self._unsettled.values():
            message.expires_at = None
        logger.warning(
            "lost the connection to %s:%d while consuming %r (%s)%s; reconnecting",
            self._source.host,
            self._source.port,
            self._queue,
            exc.message,
            released_with_it(held),
        )

    async def _touch_leases(self) -> None:
        loop = asyncio.get_running_loop()
        half = self._lease / 2
        while True:
            now = loop.time()
            due = [
                m
                for m in self._unsettled.values()
                if m.expires_at is not None and m.expires_at - half <= now
            ]
            if due:
                await asyncio.gather(*(self._touch(m) for m in due))
            next_at = min(
                (m.expires_at - half for m in self._unsettled.values() if m.expires_at is not None),
                default=None,
            )
            self._touch_needed.clear()
            delay = None if next_at is None else max(0.0, next_at - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._touch_needed.wait()

    async def _touch(self, message: Message) -> None:
        try:
            await message.touch(self._lease)
        except WonderQError as exc:
            # The lease is lost (its ack will say so): stop touching it, free its slot.
            message.expires_at = None
            self._on_settled(message)
            logger.warning("could not extend the lease of message %s: %s", message.id, exc)


def released_with_it(held: int) -> str:
    """What a lost connection did to a consumer's leases, for its log line."""
    if not held:
        return ""
    return f"; the broker releases the {held} messages this consumer held, to deliver them again"


async def run_worker(
    source: MessageSource,
    queue: str,
    handler: Handler,
    *,
    concurrency: int,
    lease: float,
    wait: float,
    backoff: Callable[[int], float],
    grace: float | None,
    stop: asyncio.Event | None,
    stop_signals: Iterable[signal.Signals],
    reconnect: bool,
) -> None:
    """Run ``handler`` on messages of ``queue`` until stopped; see ``AsyncClient.run_worker``."""
    consumer = Consumer(
        source, queue, concurrency=concurrency, lease=lease, wait=wait, reconnect=reconnect
    )
    handlers: set[asyncio.Task[None]] = set()
    shutdown = _Shutdown(queue, consumer, handlers, grace)
    listening = signals.listen(stop_signals, shutdown.on_signal, asyncio.get_running_loop())
    stop_watch = asyncio.create_task(_stop_when_set(stop, consumer)) if stop is not None else None
    try:
        async for message in consumer:
            task = asyncio.create_task(
                _handle(message, handler, backoff), name=f"wonderq handler {message.id}"
            )
            handlers.add(task)
            task.add_done_callback(handlers.discard)
        await shutdown.let_handlers_finish()
    finally:
        listening.close()
        if stop_watch is not None:
            stop_watch.cancel()
        cancelled = list(handlers)
        for task in cancelled:
            task.cancel()
        if cancelled:
            await asyncio.wait(cancelled)
        await consumer.aclose()  # releases what cancelled handlers held


class _Shutdown:
    """A worker's way out: the first stop signal lets running handlers finish (up to
    ``grace`` s), a second one cuts that short; then the rest are cancelled."""

    def __init__(
        self,
        queue: str,
        consumer: Consumer,
        handlers: set[asyncio.Task[None]],
        grace: float | None,
    ) -> None:
        self._queue = queue
        self._consumer = consumer
        self._handlers = handlers
        self._grace = grace
        self._signals = 0
        self._hurry = asyncio.Event()

    def on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            logger.warning(
                "received %s again: cancelling %d running handlers; their messages are released",
                sig.name,
                len(self._handlers),
            )
            self._hurry.set()
            return
        grace = "as long as they need" if self._grace is None else f"up to {self._grace:g} s"
        logger.warning(
            "received %s: the worker of %r takes no more messages; %d running handlers "
            "get %s to finish (%s again to stop at once)",
            sig.name,
            self._queue,
            len(self._handlers),
            grace,
            sig.name,
        )
        self._consumer.stop()

    async def let_handlers_finish(self) -> None:
        """Wait for the handlers in flight, up to ``grace`` s or until hurried."""
        if not self._handlers or self._hurry.is_set():
            return
        finished = asyncio.create_task(asyncio.wait(list(self._handlers)))
        hurried = asyncio.create_task(self._hurry.wait())
        try:
            await asyncio.wait(
                {finished, hurried}, timeout=self._grace, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            finished.cancel()
            hurried.cancel()
            await asyncio.wait({finished, hurried})
        if self._handlers and not self._hurry.is_set():
            logger.warning(
                "%d handlers still running after the %g s grace period: cancelling them; "
                "their messages are released",
                len(self._handlers),
                self._grace,
            )


async def _stop_when_set(stop: asyncio.Event, consumer: Consumer) -> None:
    await stop.wait()
    consumer.stop()


async def _handle(message: Message, handler: Handler, backoff: Callable[[int], float]) -> None:
    try:
        await handler(message)
    except Exception as exc:
        await _handler_failed(message, exc, backoff)
        return
    if message.settled:
        return
    try:
        await message.ack()
    except WonderQError as exc:
        logger.warning(
            "could not ACK message %s after its handler returned (it will be delivered again): %s",
            message.id,
            exc,
        )


async def _handler_failed(
    message: Message, exc: Exception, backoff: Callable[[int], float]
) -> None:
    """NACK the message with its backoff, then log the failure with its traceback and what
    became of the message (the NACK's reply says whether that was its last attempt)."""
    failed = (
        f"handler failed on message {message.id} of {message.queue!r} "
        f"(attempt {message.attempts}): {exc!r}"
    )
    if message.settled:
        logger.warning("%s, after settling it", failed, exc_info=exc)
        return
    delay = backoff(message.attempts)
    try:
        dead = await message.nack(delay=delay)
    except WonderQError as nack_exc:
        logger.warning(
            "%s; could not NACK it (%s): it will be delivered again once its lease is released",
            failed,
            nack_exc,
            exc_info=exc,
        )
        return
    if dead:
        logger.error(
            "%s; that was its last attempt: moved to %s.dead", failed, message.queue, exc_info=exc
        )
    else:
        logger.warning("%s; retrying in %.3g s", failed, delay, exc_info=exc)
