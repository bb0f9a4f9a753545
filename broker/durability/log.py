"""The append-only log: segment files, one writer thread, group commit.

Owns: the files ``log-NNNNNNNN.wql`` of the data directory while the server
runs. The event loop only appends bytes to an in-memory buffer and hands the
buffer to the writer thread once per loop iteration; the thread does every
``write`` and ``fsync`` (never the event loop), so a slow disk never stalls a
connection. Group commit: records that arrive while one fsync runs are written
and fsynced together by the next one; ``commit()`` gives a future resolved
once everything appended so far is on disk.

fsync policies (Redis's words): ``always`` fsyncs after every write batch and
``commit()`` waits for it; ``everysec`` fsyncs at most once a second in the
thread; ``no`` leaves flushing to the OS. In every mode the thread writes what
the loop appended within one loop iteration; a clean shutdown fsyncs.
Must never: block the event loop on a file, or resolve a commit future before
the bytes it covers are fsynced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections import deque
from enum import StrEnum

from broker.durability.records import frame
from broker.errors import Unavailable

log = logging.getLogger("wonderq.durability")

EVERYSEC_S = 1.0
#: with everysec/no, appended records reach the writer thread this often (a thread
#: wake-up per loop iteration costs more than the write); always hands off at once
HANDOFF_S = 0.005


class FsyncPolicy(StrEnum):
    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


def segment_name(n: int) -> str:
    return f"log-{n:08d}.wql"


def snapshot_name(n: int) -> str:
    return f"snap-{n:08d}.wqs"


_FILE = re.compile(r"(?:log|snap)-(\d{8})\.(?:wql|wqs)")


def file_number(name: str) -> int | None:
    """The number of a segment or snapshot file name, None for any other name."""
    m = _FILE.fullmatch(name)
    return int(m.group(1)) if m else None


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Rotate:
    """Marker in the writer's queue: close the current segment, start ``number``."""

    __slots__ = ("done", "number")

    def __init__(self, number: int, done: asyncio.Future[None]) -> None:
        self.number = number
        self.done = done


class Log:
    def __init__(
        self,
        directory: str,
        segment: int,
        policy: FsyncPolicy,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.directory = directory
        self.segment = segment  # the segment new records go to (loop side)
        self.policy = policy
        self._loop = loop
        # loop side
        self._buf: list[bytes] = []
        self._handoff_scheduled = False
        self.appended = 0  # bytes appended this run
        self.records = 0  # records appended this run
        # set by the writer thread (plain attribute stores), read by the loop
        self.synced = 0  # bytes fsynced
        self.written = 0  # bytes written to the OS
        self.last_fsync_at: float | None = None  # time.monotonic()
        self._want_progress = False  # the loop has waiters: the thread must call _progress
        self.failure: OSError | None = None
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()  # on synced
        self._write_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()  # on written
        # shared with the writer thread, under _cond
        self._cond = threading.Condition()
        self._pending: list[bytes | _Rotate] = []
        self._pending_end = 0
        self._closing = False
        self._fd = self._open_segment(segment)
        self._thread = threading.Thread(target=self._run, name="wonderq-log-writer", daemon=True)
        self._thread.start()

    def _open_segment(self, n: int) -> int:
        fd = os.open(
            os.path.join(self.directory, segment_name(n)),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
            0o644,
        )
        fsync_dir(self.directory)
        return fd

    # ------------------------------------------------------------- loop side

    def append(self, data: bytes) -> None:
        """Add one encoded record; frames are cut by the writer thread per write batch."""
        self._buf.append(data)
        self.appended += len(data)
        self.records += 1
        if not self._handoff_scheduled:
            self._handoff_scheduled = True
            if self.policy == FsyncPolicy.ALWAYS:
                self._loop.call_soon(self._handoff)
            else:
                self._loop.call_later(HANDOFF_S, self._handoff)

    @property
    def backlog(self) -> int:
        """Bytes appended but not yet written to the OS."""
        return self.appended - self.written

    def _handoff(self) -> None:
        # an early call (rotate, close) leaves the scheduled one nothing to do
        self._handoff_scheduled = False
        buf = self._buf
        if not buf:
            return
        self._buf = []
        with self._cond:
            self._pending.extend(buf)
            self._pending_end = self.appended
            self._cond.notify()

    def commit(self) -> asyncio.Future[None]:
        """A future resolved once every byte appended so far is fsynced."""
        fut: asyncio.Future[None] = self._loop.create_future()
        if self.failure is not None:
            fut.set_exception(_unavailable(self.failure))
        else:
            self._waiters.append((self.appended, fut))
            self._want_progress = True  # store first, then read synced (the thread: the reverse)
            self._progress()
        return fut

    def written_to(self, pos: int) -> asyncio.Future[None]:
        """A future resolved once the first ``pos`` bytes appended reached the OS."""
        fut: asyncio.Future[None] = self._loop.create_future()
        if self.failure is not None:
            fut.set_exception(_unavailable(self.failure))
        else:
            self._write_waiters.append((pos, fut))
            self._want_progress = True
            self._progress()
        return fut

    def rotate(self) -> asyncio.Future[None]:
        """New records go to a new segment from now on; the future resolves once
        the old segment is fsynced and closed and the new one exists."""
        self._handoff()
        self.segment += 1
        done: asyncio.Future[None] = self._loop.create_future()
        with self._cond:
            self._pending.append(_Rotate(self.segment, done))
            self._cond.notify()
        return done

    async def close(self) -> None:
        """Write and fsync everything appended, then stop the thread."""
        self._handoff()
        with self._cond:
            self._closing = True
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)

    def _progress(self) -> None:
        _resolve_upto(self._waiters, self.synced)
        _resolve_upto(self._write_waiters, self.written)
        if not self._waiters and not self._write_waiters:
            self._want_progress = False

    def _failed(self, exc: OSError) -> None:
        log.error("durable log write failed (%s); writes are no longer durable", exc)
        self.failure = exc
        err = _unavailable(exc)
        for waiters in (self._waiters, self._write_waiters):
            while waiters:
                fut = waiters.popleft()[1]
                if not fut.done():
                    fut.set_exception(err)

    # ----------------------------------------------------------- writer side

    def _run(self) -> None:
        try:
            self._write_loop()
        except OSError as exc:
            self._loop.call_soon_threadsafe(self._failed, exc)
        finally:
            if self._fd >= 0:
                os.close(self._fd)

    def _wait_for_work(
        self, dirty: bool, last_sync: float
    ) -> tuple[list[bytes | _Rotate], int, bool]:
        with self._cond:
            while not self._pending and not self._closing:
                if dirty and self.policy == FsyncPolicy.EVERYSEC:
                    left = last_sync + EVERYSEC_S - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                else:
                    self._cond.wait()
            pending, self._pending = self._pending, []
            return pending, self._pending_end, self._closing

    def _write_loop(self) -> None:
        policy = self.policy
        written = 0
        dirty = False
        last_sync = time.monotonic()
        while True:
            pending, end, closing = self._wait_for_work(dirty, last_sync)
            chunk: list[bytes] = []
            for item in pending:
                if isinstance(item, _Rotate):
                    if chunk:
                        write_all(self._fd, frame(chunk))
                        chunk = []
                    self._switch(item)
                else:
                    chunk.append(item)
            if chunk:
                write_all(self._fd, frame(chunk))
                dirty = True
            written = max(written, end)
            self.written = written
            now = time.monotonic()
            sync = dirty and (
                policy == FsyncPolicy.ALWAYS
                or closing
                or (policy == FsyncPolicy.EVERYSEC and now - last_sync >= EVERYSEC_S)
            )
            if sync:
                os.fdatasync(self._fd)
                dirty = False
                last_sync = self.last_fsync_at = time.monotonic()
            if not dirty:
                self.synced = written  # store first, then read _want_progress (see commit)
            if self._want_progress:
                self._loop.call_soon_threadsafe(self._progress)
            if closing:
                return

    def _switch(self, rotate: _Rotate) -> None:
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._fd = self._open_segment(rotate.number)
        self._loop.call_soon_threadsafe(_resolve, rotate.done)


def _resolve_upto(waiters: deque[tuple[int, asyncio.Future[None]]], pos: int) -> None:
    while waiters and waiters[0][0] <= pos:
        fut = waiters.popleft()[1]
        if not fut.done():
            fut.set_result(None)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _unavailable(exc: OSError) -> Unavailable:
    return Unavailable(f"the durable log cannot be written ({exc}); the change may be lost")
