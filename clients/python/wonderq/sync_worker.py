"""The blocking client's ``run_worker``: the asyncio worker on a loop of its own, handlers in threads.

Owns: running ``AsyncClient.run_worker`` (its concurrency, lease touching,
reconnects, signals, graceful stop) on an event loop in the calling thread,
calling each handler in a thread of a pool of ``concurrency``, and the bridge
that lets a handler thread settle its message on that loop (``ThreadMessage``).
Must never: let a handler thread block on a loop that has stopped (its calls
then raise ``ConnectionLost``), or leave a thread of its own running after it
returns; a handler still running past ``grace`` is the exception, since a
thread cannot be cancelled (its message is released, its late ``ack`` fails).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final, TypeVar

from .client import AsyncClient
from .errors import ConnectionLost
from .message import BaseMessage, Message, SyncMessage
from .results import WireMessage

T = TypeVar("T")

SyncHandler = Callable[[SyncMessage], object]
"""A blocking ``run_worker`` handler: return to ack the message, raise to retry it later."""

STOP_CHECK_S: Final = 0.1
"""How often the worker looks at a ``threading.Event`` given as ``stop``."""


def run_worker(
    make_client: Callable[[], AsyncClient],
    queue: str,
    handler: SyncHandler,
    *,
    concurrency: int,
    lease: float,
    wait: float,
    backoff: Callable[[int], float],
    grace: float | None,
    stop: threading.Event | None,
    stop_signals: Iterable[signal.Signals],
    reconnect: bool,
) -> None:
    """See ``Client.run_worker``. ``make_client`` gives the worker's own asyncio client."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")

    async def work() -> None:
        loop = asyncio.get_running_loop()
        bridge = Bridge(loop)
        stopping = asyncio.Event()
        pool = concurrent.futures.ThreadPoolExecutor(concurrency, "wonderq-handler")
        watcher = StopWatcher(stop, loop, stopping) if stop is not None else None

        async def handle(message: Message) -> None:
            await loop.run_in_executor(pool, handler, ThreadMessage(message, bridge))

        try:
            async with make_client() as client:
                await client.run_worker(
                    queue,
                    handle,
                    concurrency=concurrency,
                    lease=lease,
                    wait=wait,
                    backoff=backoff,
                    grace=grace,
                    stop=stopping,
                    stop_signals=stop_signals,
                    reconnect=reconnect,
                )
        finally:
            bridge.close()
            if watcher is not None:
                watcher.close()
            pool.shutdown(wait=False, cancel_futures=True)

    with asyncio.Runner() as runner:
        runner.run(work())


class Bridge:
    """Runs coroutines on the worker's loop for handler threads, until the worker stops.

    After ``close()``, and for calls still waiting when it comes, ``run``
    raises ``ConnectionLost``: the worker's connection, and every lease it
    held, is gone.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._closed = False

    def run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``work()`` on the loop and return its result (from a thread that is not the loop's)."""
        with self._lock:
            if self._closed:
                raise ConnectionLost("the worker has stopped; its leases were released")
            future = asyncio.run_coroutine_threadsafe(work(), self._loop)
            self._pending.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ConnectionLost("the worker stopped; its leases were released") from None
        finally:
            with self._lock:
                self._pending.discard(future)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        for future in pending:
            future.cancel()


class ThreadMessage(SyncMessage):
    """A message of the blocking ``run_worker``, as its handler thread sees it.

    ``ack``, ``nack`` and ``touch`` run those of the worker's asyncio
    ``Message`` on the worker's loop, so the worker knows it is settled.
    """

    __slots__ = ("_bridge", "_message")

    def __init__(self, message: Message, bridge: Bridge) -> None:
        wire = WireMessage(
            id=message.id,
            queue=message.queue,
            body=message.body,
            attempts=message.attempts,
            key=message.key,
        )
        BaseMessage.__init__(self, wire, lease_s=message.lease_s, expires_at=message.expires_at)
        self._message = message
        self._bridge = bridge

    def ack(self) -> None:
        try:
            self._bridge.run(self._message.ack)
        finally:
            self.settled = True

    def nack(self, delay: float | None = None) -> bool:
        try:
            return self._bridge.run(lambda: self._message.nack(delay))
        finally:
            self.settled = True

    def touch(self, lease: float | None = None) -> None:
        self._bridge.run(lambda: self._message.touch(lease))
        self.expires_at = self._message.expires_at


class StopWatcher:
    """Sets the worker's asyncio stop event once the caller's ``threading.Event`` is set.

    A thread waits on that event ``STOP_CHECK_S`` at a time (a ``threading.Event``
    cannot wake a loop, and cannot be waited on together with another one),
    so that ``close()`` ends it within that time.
    """

    def __init__(
        self, stop: threading.Event, loop: asyncio.AbstractEventLoop, stopping: asyncio.Event
    ) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(stop, loop, stopping), name="wonderq-stop", daemon=True
        )
        self._thread.start()

    def _watch(
        self, stop: threading.Event, loop: asyncio.AbstractEventLoop, stopping: asyncio.Event
    ) -> None:
        while not self._done.is_set():  # bounded: close() sets _done
            if stop.wait(STOP_CHECK_S):
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(stopping.set)
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join()
