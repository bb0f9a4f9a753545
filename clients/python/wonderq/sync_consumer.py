"""The blocking client's ``consume``: a generator of leased messages, stopped by a signal.

Owns: fetching up to ``concurrency`` messages at a time, releasing the ones
not settled when the loop ends, getting the connection back when it is lost,
and stopping on SIGINT/SIGTERM: the first signal ends the loop; if it comes
while the consumer is blocked in its own waiting GET, that GET is interrupted
(the signal handler raises ``Interrupted`` there, or the GET does before it
blocks), cancelled on the broker
(``CANCEL``) and whatever it leased is released. Must never: interrupt
anything but its own GET (the caller's code between two messages runs
untouched), start a thread, or lose a message (everything fetched and not
settled is released on the way out).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING

from . import signals
from .errors import ConnectFailed, ConnectionLost, ShuttingDown, WonderQError
from .message import SyncMessage
from .reconnect import Redial
from .worker import MAX_GET, released_with_it

if TYPE_CHECKING:
    from .sync import Client

logger = logging.getLogger("wonderq")


class Interrupted(BaseException):
    """Raised by the signal handler inside a blocking consumer's waiting GET, to end it.

    A ``BaseException``, like ``KeyboardInterrupt``, so nothing on the way
    catches it by accident; the consumer catches it, nobody else sees it.
    """


class SignalStop:
    """The stop of one blocking consumer: set by the first signal, which then lets go of it."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.requested = False
        self.interruptible: Callable[[], bool] | None = None
        """While set and true, the consumer is blocked in something a signal may interrupt."""
        self.listening: signals.Listening | None = None

    def on_signal(self, sig: signal.Signals) -> None:
        logger.warning(
            "received %s: the consumer of %r takes no more messages (%s again to interrupt)",
            sig.name,
            self.queue,
            sig.name,
        )
        self.requested = True
        if self.listening is not None:
            self.listening.close()  # the next one gets the usual handler
        if self.interruptible is not None and self.interruptible():
            raise Interrupted


def consume(
    client: Client,
    queue: str,
    *,
    concurrency: int,
    lease: float,
    wait: float,
    reconnect: bool,
    stop_signals: Iterable[signal.Signals],
) -> Generator[SyncMessage, None, None]:
    """See ``Client.consume``."""
    stop = SignalStop(queue)
    stop.listening = listening = signals.listen(stop_signals, stop.on_signal)
    fetched: list[SyncMessage] = []
    outage: Redial | None = None
    interrupted = False
    try:
        while not stop.requested:  # each pass blocks in a long-poll GET
            fetched = [m for m in fetched if not m.settled]
            free = min(concurrency - len(fetched), MAX_GET)
            if free <= 0:
                raise RuntimeError(
                    f"consume(concurrency={concurrency}): settle a message before taking the next"
                )
            try:
                batch = _fetch(client, stop, queue, free, lease, wait)
            except Interrupted:
                interrupted = True
                break
            except (ConnectionLost, ShuttingDown) as exc:  # a restart: lost, or about to be
                if not reconnect or isinstance(exc, ConnectFailed):  # that outage is over
                    raise
                try:
                    outage = _recover(client, stop, queue, exc, outage, len(fetched))
                except Interrupted:
                    break
                continue
            outage = None
            fetched.extend(batch)
            for message in batch:
                if stop.requested:
                    break  # the rest is released on the way out
                yield message
    finally:
        listening.close()
        _release(client, fetched, interrupted)


def _fetch(
    client: Client, stop: SignalStop, queue: str, free: int, lease: float, wait: float
) -> list[SyncMessage]:
    """One GET, ended by a stop signal that comes before or while it waits for its reply."""
    conn = client._connection()

    def before_blocking() -> None:
        if stop.requested and threading.current_thread() is threading.main_thread():
            raise Interrupted

    stop.interruptible = lambda: conn.in_recv
    conn.before_blocking = before_blocking
    conn.wakeup = signals.wakeup.reader
    try:
        return client.get(queue, max=free, lease=lease, wait=wait)
    finally:
        stop.interruptible = None
        conn.before_blocking = None
        conn.wakeup = None


def _recover(
    client: Client,
    stop: SignalStop,
    queue: str,
    exc: ConnectionLost | ShuttingDown,
    outage: Redial | None,
    held: int,
) -> Redial:
    """The connection is lost: get one back (a signal may interrupt that), or raise."""
    logger.warning(
        "lost the connection to %s:%d while consuming %r (%s)%s; reconnecting",
        client.host,
        client.port,
        queue,
        exc.message,
        released_with_it(held),
    )
    stop.interruptible = lambda: True
    try:
        if outage is None:
            where = f"{client.host}:{client.port}"
            outage = Redial(where, now=time.monotonic(), budget_s=client.reconnect_timeout)
        else:  # lost again before a GET got through: count it as a failed attempt
            time.sleep(outage.failed(exc, time.monotonic()))
        client._connection(outage)
    finally:
        stop.interruptible = None
    return outage


def _release(client: Client, fetched: list[SyncMessage], interrupted: bool) -> None:
    """NACK what was fetched and not settled; after an interrupted GET, also read that
    GET's reply (a ``PING`` round trip sends its ``CANCEL``), releasing what it leased."""
    for message in fetched:
        if not message.settled:
            with contextlib.suppress(WonderQError):  # lost: released with the connection
                message.nack()
    if interrupted:
        with contextlib.suppress(WonderQError):
            client.ping()
