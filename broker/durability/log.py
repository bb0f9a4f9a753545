"""The append-only log as the backend sees it: one interface, one writer per fsync policy.

Owns: what every writer shares. The event loop appends encoded records to an
in-memory buffer (``append``); group commit: what is appended between two
writes goes to disk as one frame (``records.frame``). The log's figures
(``appended``, ``written``, ``synced``, ``backlog``, ``last_fsync_at``,
``records``, ``segment``), the futures that complete when bytes reach the OS
(``written_to``) or the disk (``commit``), and a writer's failure: the first
failed write or fsync makes every waiting and later future fail with
``Unavailable``, and nothing is written after it (what is on disk is uncertain).

Each ``FsyncPolicy`` has its writer, which owns the segment file
(``log-NNNNNNNN.wql``, named by ``files.py``) while the server runs, and
decides when the buffer is written and fsynced:
  - ``always``: ``LoopWriter`` (``loop_writer.py``) writes and fsyncs on the
    event loop, once per loop iteration that appended records;
  - ``everysec``, ``no``: ``ThreadWriter`` (``thread_writer.py``) hands the
    buffer to a writer thread, which fsyncs at most once a second (``everysec``)
    or only when the segment is closed (``no``).
A clean shutdown (``close``) and a rotation fsync in every mode.
Must never: resolve a ``commit`` before the bytes it covers are fsynced, or a
``written_to`` before they were written; write after a failed write or fsync.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from broker.durability.commit import Commit
from broker.errors import Unavailable

log = logging.getLogger("wonderq.durability")

T = TypeVar("T")


class FsyncPolicy(StrEnum):
    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


class Log(ABC):
    """The log of one run: records go to segment ``segment`` and later ones.

    A writer implements ``_flush``, ``_rotate`` and ``close``. It sets ``written``
    and ``synced`` (only ever forward) and calls ``_progress`` on the loop after it
    moved them, and ``_failed`` on the loop when a write or fsync failed.
    ``schedule`` (the writer's) arranges a call of ``_flush``; ``append`` calls it
    after the first record since the last ``_flush`` (a partial of the loop's
    method: no Python frame of its own on the append path).
    """

    def __init__(
        self,
        directory: str,
        segment: int,
        loop: asyncio.AbstractEventLoop,
        schedule: Callable[[], object],
    ) -> None:
        self.directory = directory
        self.segment = segment  # the segment new records go to (loop side)
        self._loop = loop
        self._buf: list[bytes] = []  # appended, not yet taken by the writer
        self._scheduled = False
        self._schedule = schedule
        self.appended = 0  # bytes appended this run
        self.records = 0  # records appended this run
        # set by the writer (a thread's plain attribute stores), read on the loop
        self.written = 0  # bytes written to the OS
        self.synced = 0  # bytes fsynced
        self.last_fsync_at: float | None = None  # time.monotonic()
        self.fsyncs = 0  # fdatasync calls that covered appended bytes
        self.failure: OSError | None = None
        self._waiters: deque[tuple[int, Commit[Any], Any]] = deque()  # on synced
        self._write_waiters: deque[tuple[int, Commit[Any], Any]] = deque()  # on written

    def append(self, data: bytes) -> None:
        """Add one encoded record (frames are cut by the writer, per write)."""
        self._buf.append(data)
        self.appended += len(data)
        self.records += 1
        if not self._scheduled:
            self._scheduled = True
            self._schedule()

    def _take(self) -> list[bytes]:
        """(``_flush``) What was appended since the last call; the next append schedules anew."""
        self._scheduled = False
        buf, self._buf = self._buf, []
        return buf

    @property
    def backlog(self) -> int:
        """Bytes appended but not yet written to the OS."""
        return self.appended - self.written

    def commit(self, value: T) -> Commit[T]:
        """A future of ``value`` resolved once every byte appended so far is fsynced.

        Its callbacks run at once (with ``always``, inside the flush that fsynced):
        ``value`` is what the waiter needs then (a batch's replies), so no second
        future is chained to this one.
        """
        fut: Commit[T] = Commit(self._loop)
        if self.failure is not None:
            fut.set_exception(unavailable(self.failure))
        else:
            # append first, then read synced (a writer thread: store synced, then
            # look for waiters): one of the two sides sees the other
            self._waiters.append((self.appended, fut, value))
            self._progress()
        return fut

    def written_to(self, pos: int, value: T) -> Commit[T]:
        """A future of ``value`` resolved once the first ``pos`` bytes appended reached the OS."""
        fut: Commit[T] = Commit(self._loop)
        if self.failure is not None:
            fut.set_exception(unavailable(self.failure))
        else:
            self._write_waiters.append((pos, fut, value))
            self._progress()
        return fut

    def rotate(self) -> asyncio.Future[None]:
        """New records go to a new segment from now on; the future resolves once
        the old segment is fsynced and closed and the new one exists."""
        done: asyncio.Future[None] = self._loop.create_future()
        self._flush()
        self.segment += 1
        if self.failure is not None:
            done.set_exception(self.failure)
        else:
            self._rotate(done)
        return done

    @abstractmethod
    async def close(self) -> None:
        """Write and fsync everything appended, and close the segment."""

    @abstractmethod
    def _flush(self) -> None:
        """Move on what was appended (``_take``): the call ``schedule`` arranges,
        made early by ``rotate`` and ``close``."""

    @abstractmethod
    def _rotate(self, done: asyncio.Future[None]) -> None:
        """Switch to segment ``segment`` after what was flushed; resolve ``done`` then."""

    def _waiting(self) -> bool:
        """(any thread) A future waits on ``written`` or ``synced``."""
        return bool(self._waiters or self._write_waiters)

    def _progress(self) -> None:
        _resolve_upto(self._waiters, self.synced)
        _resolve_upto(self._write_waiters, self.written)

    def _failed(self, exc: OSError) -> None:
        log.error("durable log write failed (%s); writes are no longer durable", exc)
        self.failure = exc
        err = unavailable(exc)
        for waiters in (self._waiters, self._write_waiters):
            while waiters:
                fut = waiters.popleft()[1]
                if not fut.done():  # a connection that went away cancelled its own
                    fut.set_exception(err)


def _resolve_upto(waiters: deque[tuple[int, Commit[Any], Any]], pos: int) -> None:
    while waiters and waiters[0][0] <= pos:
        _, fut, value = waiters.popleft()
        if not fut.done():  # a connection that went away cancelled its own
            fut.set_result(value)


def resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def unavailable(exc: OSError) -> Unavailable:
    return Unavailable(f"the durable log cannot be written ({exc}); the change may be lost")
