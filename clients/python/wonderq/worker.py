"""The consumer loop and the worker helper built on it (asyncio client only).

Owns: keeping up to ``concurrency`` messages leased, long-polling for more,
touching leases before they run out, settling messages for ``run_worker``, and
stopping cleanly. Must never: lose a message on the way out (every message it
leased and did not settle is released with ``NACK`` when it stops), poll, or
leave a task it created running after it returns.

Stopping cancels the consumer's waiting GET: the client sends ``CANCEL`` for
it before any ``NACK`` of the messages it releases, so the broker cannot hand
them straight back to that GET (which nobody reads: an attempt burned).
Messages the GET got before the cancel took effect are released too.

Leases belong to a connection. If the connection is lost, the broker releases
every message this consumer held: their handlers' ``ack`` then fails and the
messages are delivered again (possibly elsewhere). Work is at-least-once;
make handlers idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Protocol

from .errors import ConnectionLost, WonderQError
from .message import Message

logger = logging.getLogger("wonderq")

Handler = Callable[[Message], Awaitable[object]]
"""A ``run_worker`` handler: return to ack the message, raise to retry it later."""

DEFAULT_STOP_SIGNALS: Final = (signal.SIGTERM,)
MAX_GET: Final = 1000
"""Most messages one GET asks for: the protocol's default ``--max-get``."""


def exponential_backoff(attempts: int) -> float:
    """Default retry delay after a failed attempt: 1 s, 2 s, 4 s, ... at most 300 s."""
    return float(min(300, 2 ** max(0, min(attempts - 1, 16))))


class MessageSource(Protocol):
    """What a consumer needs from its client."""

    @property
    def reconnect(self) -> bool: ...

    async def get(
        self, queue: str, *, max: int = 1, lease: float | None = None, wait: float = 0
    ) -> list[Message]: ...


class Consumer:
    """Leases messages from one queue, at most ``concurrency`` unsettled at a time.

    Iterate it for messages; each must then be settled (``ack``/``nack``),
    which frees its slot. While a message is unsettled, its lease is touched
    whenever half of it has run, so slow work does not lose it. ``stop()``
    ends the iteration; ``aclose()`` stops and releases every unsettled message.
    """

    def __init__(
        self, source: MessageSource, queue: str, *, concurrency: int, lease: float, wait: float
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
        lost_in_a_row = 0
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
            except ConnectionLost:
                lost_in_a_row += 1
                if not self._source.reconnect or lost_in_a_row > 1:
                    raise
                self._forget_all("the connection was lost")
                continue
            finally:
                self._fetching = None
            lost_in_a_row = 0
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

    def _forget_all(self, why: str) -> None:
        if self._unsettled:
            logger.warning(
                "%s: the broker released the %d messages this consumer held on %r",
                why,
                len(self._unsettled),
                self._queue,
            )
        for message in self._unsettled.values():
            message._on_settled = None
        self._unsettled.clear()
        self._buffer.clear()

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
) -> None:
    """Run ``handler`` on messages of ``queue`` until stopped; see ``AsyncClient.run_worker``."""
    consumer = Consumer(source, queue, concurrency=concurrency, lease=lease, wait=wait)
    handlers: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    installed = _install_signal_handlers(loop, stop_signals, consumer.stop)
    stop_watch = asyncio.create_task(_stop_when_set(stop, consumer)) if stop is not None else None
    try:
        async for message in consumer:
            task = asyncio.create_task(
                _handle(message, handler, backoff), name=f"wonderq handler {message.id}"
            )
            handlers.add(task)
            task.add_done_callback(handlers.discard)
        if handlers:  # stopped: let the handlers in flight finish
            await asyncio.wait(list(handlers), timeout=grace)
    finally:
        _remove_signal_handlers(loop, installed)
        if stop_watch is not None:
            stop_watch.cancel()
        cancelled = list(handlers)
        for task in cancelled:
            task.cancel()
        if cancelled:
            await asyncio.wait(cancelled)
        await consumer.aclose()  # releases what cancelled handlers held


async def _stop_when_set(stop: asyncio.Event, consumer: Consumer) -> None:
    await stop.wait()
    consumer.stop()


async def _handle(message: Message, handler: Handler, backoff: Callable[[int], float]) -> None:
    try:
        await handler(message)
    except Exception as exc:
        if message.settled:
            logger.warning("handler failed on message %s after settling it: %r", message.id, exc)
            return
        delay = backoff(message.attempts)
        logger.warning(
            "handler failed on message %s (attempt %d): %r; retrying in %.3g s",
            message.id,
            message.attempts,
            exc,
            delay,
        )
        try:
            if await message.nack(delay=delay):
                logger.error(
                    "message %s used up its attempts; moved to %s.dead", message.id, message.queue
                )
        except WonderQError as nack_exc:
            logger.warning("could not NACK message %s: %s", message.id, nack_exc)
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


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, signals: Iterable[signal.Signals], callback: Callable[[], None]
) -> list[tuple[signal.Signals, Any]]:
    installed: list[tuple[signal.Signals, Any]] = []
    for sig in signals:
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError, ValueError):
            logger.debug("cannot handle %s here (not the main thread?)", sig.name)
            continue
        installed.append((sig, previous))
    return installed


def _remove_signal_handlers(
    loop: asyncio.AbstractEventLoop, installed: list[tuple[signal.Signals, Any]]
) -> None:
    for sig, previous in installed:
        loop.remove_signal_handler(sig)
        # Put back a handler set with signal.signal(); a loop's own handler cannot be restored.
        if previous is not None and not isinstance(
            getattr(previous, "__self__", None), asyncio.AbstractEventLoop
        ):
            signal.signal(sig, previous)
