"""Stopping consumers on SIGINT and SIGTERM: one handler per signal, shared by every consumer.

Owns: taking a signal over while at least one consumer (``consume``,
``run_worker``, asyncio or blocking) listens for it, calling every listener
when it arrives, and handing the signal back (its previous handler) when the
last listener leaves. Signals are process-wide, so the table of taken signals
is too; it holds entries only while listeners exist.
Must never: take a signal someone else handles. Only a signal with its
default handler (``SIG_DFL``, Python's ``KeyboardInterrupt`` raiser, or the
one ``asyncio.run`` installs for Ctrl-C) is taken; an application that handles
its own signals (a web server, a test runner) keeps them, and stops its
consumers itself (``stop=``, cancelling, ``break``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final

logger = logging.getLogger("wonderq")

Listener = Callable[[signal.Signals], None]
"""Called with the signal that arrived (in the loop, or in the main thread for a blocking
consumer). It may raise to interrupt a blocking consumer's wait; every listener runs first."""

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""What stops a consumer by default: Ctrl-C and what ``kill``, systemd, Docker and
Kubernetes send."""


@dataclass
class _Taken:
    """A signal taken over on one loop (or, for blocking consumers, with ``signal.signal``)."""

    loop: asyncio.AbstractEventLoop | None
    previous: Any
    listeners: list[Listener] = field(default_factory=list)


_taken: dict[tuple[asyncio.AbstractEventLoop | None, signal.Signals], _Taken] = {}


class _Wakeup:
    """The process's wakeup socket while a blocking consumer holds a signal.

    A signal that lands after a blocking consumer's last check and before its
    ``recv`` starts runs its Python handler only once that ``recv`` returns (up
    to a waiting GET's 60 s). With ``signal.set_wakeup_fd`` the C-level handler
    also writes a byte here at once, so a read that waits on this socket and
    its own (``SyncConnection``) wakes up and the handler runs. The pair is
    made once and kept; the wakeup fd is set only while blocking listeners
    exist, and never over one someone else set.
    """

    def __init__(self) -> None:
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._previous: int | None = None  # set while ours is installed

    @property
    def reader(self) -> socket.socket | None:
        """The socket to wait on beside one's own, or None when no wakeup fd is ours."""
        return None if self._pair is None or self._previous is None else self._pair[0]

    def install(self) -> None:
        if self._previous is not None:
            return
        if self._pair is None:
            self._pair = socket.socketpair()
            for end in self._pair:
                end.setblocking(False)
        try:
            previous = signal.set_wakeup_fd(self._pair[1].fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            return
        if previous != -1:  # someone else's: keep theirs
            signal.set_wakeup_fd(previous)
            return
        self._previous = previous

    def uninstall(self) -> None:
        if self._previous is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(self._previous)
            self._previous = None


wakeup = _Wakeup()


class Listening:
    """Listeners registered by ``listen()``; ``close()`` (idempotent) removes them."""

    def __init__(self, entries: list[tuple[signal.Signals, _Taken]], listener: Listener) -> None:
        self._entries = entries
        self._listener = listener

    @property
    def signals(self) -> list[signal.Signals]:
        """The signals this listener got (those that were free to take)."""
        return [sig for sig, _ in self._entries]

    def close(self) -> None:
        entries, self._entries = self._entries, []
        for sig, taken in entries:
            with contextlib.suppress(ValueError):
                taken.listeners.remove(self._listener)
            if not taken.listeners:
                _give_back(sig, taken)


def listen(
    signals: Iterable[signal.Signals],
    listener: Listener,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Listening:
    """Call ``listener`` when one of ``signals`` arrives, until ``close()``.

    With ``loop``, through ``loop.add_signal_handler`` (the listener runs in
    the loop); without, through ``signal.signal`` (it runs in the main thread,
    between two bytecodes). Signals that cannot be taken here (not the main
    thread, or handled by someone else) are skipped.
    """
    entries: list[tuple[signal.Signals, _Taken]] = []
    if threading.current_thread() is not threading.main_thread():
        return Listening(entries, listener)  # signals are only ever handled in the main thread
    for sig in signals:
        taken = _taken.get((loop, sig)) or _take(sig, loop)
        if taken is None:
            continue
        taken.listeners.append(listener)
        entries.append((sig, taken))
    return Listening(entries, listener)


def _take(sig: signal.Signals, loop: asyncio.AbstractEventLoop | None) -> _Taken | None:
    previous = signal.getsignal(sig)
    if not _is_default(previous):
        logger.debug("%s has a handler of its own; not taking it over", sig.name)
        return None
    taken = _Taken(loop, previous)
    try:
        if loop is None:
            signal.signal(sig, lambda signum, frame: _fire(taken, sig, frame))
            wakeup.install()
        else:
            loop.add_signal_handler(sig, _fire, taken, sig, None)
    except (NotImplementedError, RuntimeError, ValueError):  # e.g. Windows loops
        logger.debug("cannot handle %s here", sig.name)
        return None
    _taken[(loop, sig)] = taken
    return taken


def _is_default(handler: Any) -> bool:
    if handler in (signal.SIG_DFL, signal.default_int_handler):
        return True
    # asyncio.run()'s Ctrl-C handler (a partial of Runner._on_sigint): cancels the main
    # task, then raises KeyboardInterrupt
    method = handler.func if isinstance(handler, functools.partial) else handler
    return getattr(method, "__func__", None) is getattr(asyncio.Runner, "_on_sigint", False)


def _fire(taken: _Taken, sig: signal.Signals, frame: FrameType | None) -> None:
    failure: BaseException | None = None
    for listener in list(taken.listeners):
        try:
            listener(sig)
        except BaseException as exc:  # raised on purpose, to interrupt a blocking wait
            failure = failure or exc
    if failure is not None:
        raise failure


def _give_back(sig: signal.Signals, taken: _Taken) -> None:
    _taken.pop((taken.loop, sig), None)
    with contextlib.suppress(ValueError):  # not the main thread (a generator collected elsewhere)
        if taken.loop is not None and not taken.loop.is_closed():
            taken.loop.remove_signal_handler(sig)
        signal.signal(sig, taken.previous)
    if taken.loop is None and not any(loop is None for loop, _ in _taken):
        wakeup.uninstall()
