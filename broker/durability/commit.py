"""``Commit``: a future whose done callbacks run the moment it completes.

Owns: the completion of a group commit. An ``asyncio.Future`` runs its done
callbacks one loop iteration after ``set_result`` (``call_soon``); a chain of
two (the fsync, then a batch's replies) puts two more iterations, each with its
``epoll`` call, between an fsync and the replies it releases. A ``Commit`` calls
its plain callbacks at once, so the log's flush writes the replies of every batch
its fsync covers before it returns, within the loop iteration that ran it (as
Redis answers in ``beforeSleep``, right after its AOF fsync).

It is a Future-like object in asyncio's sense (``asyncio.isfuture`` is true:
``_asyncio_future_blocking``), so ``ensure_future`` passes it through and ``await``
works. A callback added with a ``context`` (a ``Task`` awaiting it) is scheduled
with ``call_soon`` as asyncio does, so a task never runs inside a flush.
Must never: let one callback's exception stop the others (it goes to the loop's
exception handler, as for a callback asyncio runs).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any, Final, Generic, TypeVar

T = TypeVar("T")

_PENDING, _DONE, _CANCELLED = 0, 1, 2

Callback = Callable[["Commit[Any]"], object]


class Commit(Generic[T]):
    #: what a commit releases was applied before its records were appended: a
    #: connection may run its next batches while it waits (``backend.base.applied``)
    applied: Final = True

    __slots__ = (
        "_asyncio_future_blocking",
        "_callbacks",
        "_exception",
        "_loop",
        "_result",
        "_state",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[tuple[Callback, contextvars.Context | None]] = []
        self._asyncio_future_blocking = False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    # -------------------------------------------------------------- state

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> T:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("Result is not ready.")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]  # set by set_result

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("Exception is not set.")
        return self._exception

    # ------------------------------------------------------------ complete

    def set_result(self, result: T) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        self._result = result
        self._complete(_DONE)

    def set_exception(self, exception: BaseException) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        self._exception = exception
        self._complete(_DONE)

    def cancel(self, msg: object = None) -> bool:
        if self._state != _PENDING:
            return False
        self._complete(_CANCELLED)
        return True

    def _complete(self, state: int) -> None:
        # the callbacks are called from here, not through a helper: a flush runs a
        # call chain per connection (flush -> its replies -> its next batch -> the
        # engine -> the journal) and CPython 3.11 maps and unmaps a 16 KiB frame chunk
        # each time such a chain crosses a chunk boundary: every frame less counts
        self._state = state
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:
            if context is not None:
                self._loop.call_soon(fn, self, context=context)
                continue
            try:
                fn(self)
            except Exception as exc:  # as asyncio does for a callback it runs
                self._report(fn, exc)

    def _report(self, fn: Callback, exc: Exception) -> None:
        self._loop.call_exception_handler(
            {"message": f"exception in a Commit callback {fn!r}", "exception": exc}
        )

    # ----------------------------------------------------------- callbacks

    def add_done_callback(
        self, fn: Callback, *, context: contextvars.Context | None = None
    ) -> None:
        if self._state == _PENDING:
            self._callbacks.append((fn, context))
        elif context is not None:
            self._loop.call_soon(fn, self, context=context)
        else:
            try:
                fn(self)
            except Exception as exc:
                self._report(fn, exc)

    def remove_done_callback(self, fn: Callback) -> int:
        kept = [(f, c) for f, c in self._callbacks if f != fn]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        return self.result()

    __iter__ = __await__
