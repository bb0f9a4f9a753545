"""The append-only log: segment files, group commit, and (for everysec/no) a writer thread.

Owns: the files ``log-NNNNNNNN.wql`` of the data directory while the server
runs. The event loop appends encoded records to an in-memory buffer. Group
commit: everything appended in one loop iteration is written as one frame.

``always`` works as Redis's ``appendfsync always``: once per loop iteration
that appended records (a ``call_soon`` from the first append, so it runs after
every connection read in that iteration and before the loop polls again), the
loop itself writes the frame and ``fdatasync``s it, then completes the
``commit()`` of every batch the fsync covers, whose replies go out at once
(``Commit`` runs its callbacks immediately). Requests that arrive during an
fsync wait in the socket buffers and share the next one. No thread, no
hand-off, no wake-up, no GIL contention per commit; the cost is that the loop
waits for the disk (one fsync per iteration that changed state), during which no
connection is served, which with ``always`` every change waits for anyway.

With ``always`` a segment is zero-filled ahead of the data (``ZERO_AHEAD_BYTES``,
by a helper thread, fsynced), and frames overwrite those zeros: an fsync then
writes the data pages only, not the file's new size too (measured on ext4: one
block request per fdatasync instead of two, about 30% less CPU and time). Rotation and a clean close truncate the
segment to its data; after a crash the zeros are a zero-filled tail, which the
replay truncates (``replay.py``).

``everysec`` and ``no`` never wait for the disk on the loop: the buffer goes to
one writer thread every ``HANDOFF_S``; the thread writes it, and with
``everysec`` fsyncs at most once a second. A clean shutdown fsyncs in every mode.
Must never: resolve a commit before the bytes it covers are fsynced, write
after a failed write or fsync, or (everysec/no) block the event loop on a file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import threading
import time
from collections import deque
from enum import StrEnum
from typing import Any, TypeVar

from broker.durability.commit import Commit
from broker.durability.records import frame
from broker.errors import Unavailable

log = logging.getLogger("wonderq.durability")

T = TypeVar("T")

EVERYSEC_S = 1.0
#: with everysec/no, appended records reach the writer thread this often (a thread
#: wake-up per loop iteration costs more than the write)
HANDOFF_S = 0.005
#: (always) how far ahead of the data a segment is zero-filled; a new fill starts
#: when the data is within half of this of the filled end
ZERO_AHEAD_BYTES = 8 * 1024 * 1024
#: (always) the first fill of a segment starts this far in, so the first frames
#: never wait for it
ZERO_FIRST_AT = 64 * 1024
_ZEROS = bytes(1024 * 1024)


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
        self.fsyncs = 0  # fdatasync calls of the log (not counting rotations)
        self._waiters: deque[tuple[int, Commit[Any], Any]] = deque()  # on synced
        self._write_waiters: deque[tuple[int, Commit[Any], Any]] = deque()  # on written
        # shared with the writer thread, under _cond
        self._cond = threading.Condition()
        self._pending: list[bytes | _Rotate] = []
        self._pending_end = 0
        self._closing = False
        self._fd = self._open_segment(segment)
        # always: the loop writes at _end; a helper thread zero-fills ahead of it
        self._end = 0  # where the next frame goes
        self._zeroed = 0  # the segment is zero-filled (and fsynced) up to here
        self._zero_from = 0  # the fill in progress starts here: no frame may cross it
        self._zeroing: concurrent.futures.Future[int] | None = None
        self._zero_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None  # always: the loop writes
        if policy == FsyncPolicy.ALWAYS:
            self._zero_pool = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="wonderq-log-zero"
            )
            self._zero_ahead()
        else:
            self._thread = threading.Thread(
                target=self._run, name="wonderq-log-writer", daemon=True
            )
            self._thread.start()

    def _open_segment(self, n: int) -> int:
        fd = os.open(
            os.path.join(self.directory, segment_name(n)),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | (0 if self._thread_less() else os.O_APPEND),
            0o644,
        )
        fsync_dir(self.directory)
        return fd

    def _thread_less(self) -> bool:
        return self.policy == FsyncPolicy.ALWAYS

    # ------------------------------------------------- always: zero-fill ahead

    def _zero_ahead(self) -> None:
        """Start filling the next ``ZERO_AHEAD_BYTES`` with zeros if the data nears the end."""
        fill = self._zeroing
        if fill is not None:
            if not fill.done():
                return
            self._zero_done(fill)
        if self._zero_pool is None or self._end + ZERO_AHEAD_BYTES // 2 < self._zeroed:
            return
        start = max(self._zeroed, self._end, ZERO_FIRST_AT)
        self._zero_from = start
        self._zeroing = self._zero_pool.submit(_zero_fill, self._fd, start, ZERO_AHEAD_BYTES)

    def _zero_wait(self) -> None:
        """Wait (blocking) for the fill in progress: the fd is about to change or a
        frame would cross into the range being zeroed."""
        fill = self._zeroing
        if fill is not None:
            concurrent.futures.wait([fill])
            self._zero_done(fill)

    def _zero_done(self, fill: concurrent.futures.Future[int]) -> None:
        self._zeroing = None
        exc = fill.exception()
        if exc is None:
            self._zeroed = fill.result()
            return
        # a fill that failed (disk full) only costs speed: frames are appended past it
        log.warning("zero-filling the log ahead failed (%s); appending without it", exc)
        if self._zero_pool is not None:
            self._zero_pool.shutdown(wait=False)
            self._zero_pool = None

    def _write_frame(self, data: bytes) -> None:
        end = self._end + len(data)
        if self._zeroing is not None and end > self._zero_from:
            self._zero_wait()
        view = memoryview(data)
        pos = self._end
        while view:
            n = os.pwrite(self._fd, view, pos)
            view = view[n:]
            pos += n
        self._end = end

    def _trim(self) -> None:
        """Cut the zeros after the data (before the segment is closed)."""
        self._zero_wait()
        os.ftruncate(self._fd, self._end)
        os.fsync(self._fd)  # fsync, not fdatasync: the size shrank

    # ------------------------------------------------------------- loop side

    def append(self, data: bytes) -> None:
        """Add one encoded record; frames are cut by the writer thread per write batch."""
        self._buf.append(data)
        self.appended += len(data)
        self.records += 1
        if not self._handoff_scheduled:
            self._handoff_scheduled = True
            if self._thread is None:
                self._loop.call_soon(self._flush)
            else:
                self._loop.call_later(HANDOFF_S, self._handoff)

    @property
    def backlog(self) -> int:
        """Bytes appended but not yet written to the OS."""
        return self.appended - self.written

    def _flush(self) -> None:
        """(always) Write and fsync what this loop iteration appended, on the loop,
        then complete every commit it covers (their replies go out now)."""
        # an early call (rotate, close) leaves the scheduled one nothing to do
        self._handoff_scheduled = False
        buf = self._buf
        if not buf:
            return
        self._buf = []
        if self.failure is not None:
            return  # never write after a failure: what is on disk is uncertain
        try:
            self._write_frame(frame(buf))
            self.written = self.appended
            os.fdatasync(self._fd)
        except OSError as exc:
            self._failed(exc)
            return
        self.fsyncs += 1
        self.synced = self.appended
        self.last_fsync_at = time.monotonic()
        self._progress()
        self._zero_ahead()

    def _handoff(self) -> None:
        """(everysec, no) Give what was appended to the writer thread."""
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

    def commit(self, value: T) -> Commit[T]:
        """A future of ``value`` resolved once every byte appended so far is fsynced.

        Its callbacks run at once (with ``always``, inside the flush that fsynced):
        ``value`` is what the waiter needs then (a batch's replies), so no second
        future is chained to this one.
        """
        fut: Commit[T] = Commit(self._loop)
        if self.failure is not None:
            fut.set_exception(_unavailable(self.failure))
        else:
            self._waiters.append((self.appended, fut, value))
            self._want_progress = True  # store first, then read synced (the thread: the reverse)
            self._progress()
        return fut

    def written_to(self, pos: int, value: T) -> Commit[T]:
        """A future of ``value`` resolved once the first ``pos`` bytes appended reached the OS."""
        fut: Commit[T] = Commit(self._loop)
        if self.failure is not None:
            fut.set_exception(_unavailable(self.failure))
        else:
            self._write_waiters.append((pos, fut, value))
            self._want_progress = True
            self._progress()
        return fut

    def rotate(self) -> asyncio.Future[None]:
        """New records go to a new segment from now on; the future resolves once
        the old segment is fsynced and closed and the new one exists."""
        done: asyncio.Future[None] = self._loop.create_future()
        if self._thread is None:
            self._flush()
            self.segment += 1
            if self.failure is not None:
                done.set_exception(self.failure)
                return done
            try:
                self._trim()
                self._switch_segment(self.segment)
                self._end = self._zeroed = 0
                self._zero_ahead()
            except OSError as exc:
                self._failed(exc)
                done.set_exception(exc)
            else:
                done.set_result(None)
            return done
        self._handoff()
        self.segment += 1
        with self._cond:
            self._pending.append(_Rotate(self.segment, done))
            self._cond.notify()
        return done

    async def close(self) -> None:
        """Write and fsync everything appended, then stop the thread."""
        if self._thread is None:
            self._flush()
            try:
                if self._fd >= 0 and self.failure is None:
                    self._trim()
            finally:
                if self._zero_pool is not None:
                    self._zero_pool.shutdown(wait=True)
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
            return
        self._handoff()
        thread = self._thread
        with self._cond:
            self._closing = True
            self._cond.notify()
        await asyncio.to_thread(thread.join)

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
                if not fut.done():  # a connection that went away cancelled its own
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
        self._switch_segment(rotate.number)
        self._loop.call_soon_threadsafe(_resolve, rotate.done)

    def _switch_segment(self, number: int) -> None:
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._fd = self._open_segment(number)


def _zero_fill(fd: int, start: int, size: int) -> int:
    """(helper thread) Write ``size`` zero bytes at ``start`` and fsync; the new filled end."""
    pos, stop = start, start + size
    while pos < stop:
        pos += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), stop - pos)], pos)
    os.fdatasync(fd)
    return stop


def _resolve_upto(waiters: deque[tuple[int, Commit[Any], Any]], pos: int) -> None:
    while waiters and waiters[0][0] <= pos:
        _, fut, value = waiters.popleft()
        if not fut.done():  # a connection that went away cancelled its own
            fut.set_result(value)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _unavailable(exc: OSError) -> Unavailable:
    return Unavailable(f"the durable log cannot be written ({exc}); the change may be lost")
