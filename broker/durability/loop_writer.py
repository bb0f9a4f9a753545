"""The ``--fsync always`` writer: group commit on the event loop, zero fill ahead.

Owns: the segment file while the server runs with ``always``. This works as
Redis's ``appendfsync always``: once per loop iteration that appended records (a
``call_soon`` from the first append, so it runs after every connection read in
that iteration and before the loop polls again), the loop itself writes the
frame and ``fdatasync``s it, then completes the ``commit()`` of every batch the
fsync covers, whose replies go out at once (``Commit`` runs its callbacks
immediately). Requests that arrive during an fsync wait in the socket buffers and
share the next one. No thread, no hand-off, no wake-up, no GIL contention per
commit; the cost is that the loop waits for the disk (one fsync per iteration
that changed state), during which no connection is served, which with
``always`` every change waits for anyway.

A segment is zero-filled ahead of the data (``ZERO_AHEAD_BYTES``, by a helper
thread, fsynced), and frames overwrite those zeros (``pwrite`` at ``_end``): an
fsync then writes the data pages only, not the file's new size too (measured on
ext4: one block request per fdatasync instead of two, about 30% less CPU and
time). Rotation and a clean close truncate the segment to its data; after a
crash the zeros are a zero-filled tail, which the replay truncates
(``replay.py``). A fill that fails (disk full) only costs speed: frames are then
appended past the filled end.
Must never: resolve a commit before the fsync that covers it returned, write
after a failed write or fsync, or let a frame overlap a range being zero-filled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import time

from broker.durability import files
from broker.durability.log import Log
from broker.durability.records import frame

log = logging.getLogger("wonderq.durability")

#: how far ahead of the data a segment is zero-filled; a new fill starts when the
#: data is within half of this of the filled end
ZERO_AHEAD_BYTES = 8 * 1024 * 1024
#: the first fill of a segment starts this far in, so the first frames never wait for it
ZERO_FIRST_AT = 64 * 1024
_ZEROS = bytes(1024 * 1024)


class LoopWriter(Log):
    def __init__(self, directory: str, segment: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(directory, segment, loop, functools.partial(loop.call_soon, self._flush))
        self._fd = files.create_segment(directory, segment, append=False)
        self._end = 0  # where the next frame goes
        self._zeroed = 0  # the segment is zero-filled (and fsynced) up to here
        self._zero_from = 0  # the fill in progress starts here: no frame may cross it
        self._zeroing: concurrent.futures.Future[int] | None = None
        self._zero_pool: concurrent.futures.ThreadPoolExecutor | None = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wonderq-log-zero")
        )
        self._zero_ahead()

    def _flush(self) -> None:
        """Write and fsync what this loop iteration appended, on the loop, then
        complete every commit it covers (their replies go out now)."""
        # an early call (rotate, close) leaves the scheduled one nothing to do
        buf = self._take()
        if not buf or self.failure is not None:
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

    def _rotate(self, done: asyncio.Future[None]) -> None:
        try:
            self._close_segment()
            self._fd = files.create_segment(self.directory, self.segment, append=False)
            self._end = self._zeroed = 0
            self._zero_ahead()
        except OSError as exc:
            self._failed(exc)
            done.set_exception(exc)
        else:
            done.set_result(None)

    async def close(self) -> None:
        self._flush()
        try:
            if self._fd >= 0 and self.failure is None:
                self._close_segment()
        finally:
            if self._zero_pool is not None:
                self._zero_pool.shutdown(wait=True)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _close_segment(self) -> None:
        """Cut the zeros after the data, fsync, close."""
        self._zero_wait()
        os.ftruncate(self._fd, self._end)
        os.fsync(self._fd)  # fsync, not fdatasync: the size shrank
        os.close(self._fd)
        self._fd = -1

    # ------------------------------------------------------ zero fill ahead

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
        log.warning("zero-filling the log ahead failed (%s); appending without it", exc)
        if self._zero_pool is not None:
            self._zero_pool.shutdown(wait=False)
            self._zero_pool = None


def _zero_fill(fd: int, start: int, size: int) -> int:
    """(helper thread) Write ``size`` zero bytes at ``start`` and fsync; the new filled end."""
    pos, stop = start, start + size
    while pos < stop:
        pos += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), stop - pos)], pos)
    os.fdatasync(fd)
    return stop
