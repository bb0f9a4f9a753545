"""The ``--fsync always`` writer: group commit on the event loop, the segment filled ahead.

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

A segment is filled ahead of the data (``FILL_AHEAD_BYTES`` of ``FILL_BYTE``,
by a helper thread, fsynced; its first ``FILL_FIRST_AT`` bytes on the loop when
the segment is created, so no frame ever lands in a hole), and frames overwrite
that fill (``pwrite`` at ``_end``): an fsync then writes the data pages only,
not the file's new size too (measured on ext4: one block request per fdatasync
instead of two, about 30% less CPU and time). Rotation and a clean close cut
the segment to its data; after a crash the fill is a torn tail, which the replay
cuts off (``tail.py``: the fill is never zeros, so zeros where data was are
damage, not a torn write). The fill only ever takes space the data would take
next, and never the last of it: a fill takes at most half the free space of the
file system (``fstatvfs``), one under ``FILL_MIN_BYTES`` is not started (looked
at again after that much data), and a fill that fails gives back what it took
(the file is cut back) and only costs speed: frames are then appended past the
filled end. So a restart on a nearly full disk starts, and writes as long as
there is room for the data itself.
Must never: resolve a commit before the fsync that covers it returned, write
after a failed write or fsync, let a frame overlap a range being filled, or
fail a start or a write because a fill failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import time

from broker.durability import files
from broker.durability.log import Log
from broker.durability.records import frame
from broker.durability.tail import FILL_BYTE

log = logging.getLogger("wonderq.durability")

#: how far ahead of the data a segment is filled; a new fill starts when the
#: data is within half of this of the filled end
FILL_AHEAD_BYTES = 8 * 1024 * 1024
#: filled on the loop when a segment is created: the first frames never wait for a fill
FILL_FIRST_AT = 64 * 1024
#: a smaller fill is not started (the disk is nearly full): frames are appended
FILL_MIN_BYTES = 1024 * 1024
_FILL = bytes([FILL_BYTE]) * (1024 * 1024)


class LoopWriter(Log):
    def __init__(self, directory: str, segment: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(directory, segment, loop, functools.partial(loop.call_soon, self._flush))
        self._fd = files.create_segment(directory, segment, append=False)
        self._end = 0  # where the next frame goes
        self._filled = 0  # the segment is filled (fsynced, or by the loop) up to here
        self._fill_from = 0  # the fill in progress starts here: no frame may cross it
        self._fill_again_at = 0  # no fill is started before the data reaches this
        self._filling: concurrent.futures.Future[int] | None = None
        self._fill_pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="wonderq-log-fill"
        )
        self._fill_head()

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
        self._fill_ahead()

    def _write_frame(self, data: bytes) -> None:
        end = self._end + len(data)
        if self._filling is not None and end > self._fill_from:
            self._fill_wait()
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
            self._end = self._filled = self._fill_again_at = 0
            self._fill_head()
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
            self._fill_pool.shutdown(wait=True)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _close_segment(self) -> None:
        """Cut the fill after the data, fsync, close."""
        self._fill_wait()
        os.ftruncate(self._fd, self._end)
        os.fsync(self._fd)  # fsync, not fdatasync: the size shrank
        os.close(self._fd)
        self._fd = -1

    # ------------------------------------------------------------ fill ahead

    def _fill_head(self) -> None:
        """(a new segment) Fill its first bytes on the loop, then start the fill ahead."""
        if self._fill_size() >= FILL_MIN_BYTES:
            try:
                _fill(self._fd, 0, FILL_FIRST_AT, sync=False)  # the first fdatasync covers it
                self._filled = FILL_FIRST_AT
            except OSError as exc:
                log.warning("filling the log ahead failed (%s); appending without it", exc)
        self._fill_ahead()

    def _fill_ahead(self) -> None:
        """Start filling the next ``FILL_AHEAD_BYTES`` (at most) if the data nears the end."""
        fill = self._filling
        if fill is not None:
            if not fill.done():
                return
            self._fill_done(fill)
        if self._end + FILL_AHEAD_BYTES // 2 < self._filled or self._end < self._fill_again_at:
            return
        size = min(FILL_AHEAD_BYTES, self._fill_size())
        if size < FILL_MIN_BYTES:  # the disk is nearly full: look again after that much data
            self._fill_again_at = self._end + FILL_MIN_BYTES
            return
        start = max(self._filled, self._end)
        self._fill_from = start
        self._filling = self._fill_pool.submit(_fill, self._fd, start, size)

    def _fill_size(self) -> int:
        """How much may be filled now: half the free space, in whole MiB (0 if unknown)."""
        try:
            st = os.fstatvfs(self._fd)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize // 2 // FILL_MIN_BYTES * FILL_MIN_BYTES

    def _fill_wait(self) -> None:
        """Wait (blocking) for the fill in progress: the fd is about to change or a
        frame would cross into the range being filled."""
        fill = self._filling
        if fill is not None:
            concurrent.futures.wait([fill])
            self._fill_done(fill)

    def _fill_done(self, fill: concurrent.futures.Future[int]) -> None:
        self._filling = None
        exc = fill.exception()
        if exc is None:
            self._filled = fill.result()
            return
        log.warning("filling the log ahead failed (%s); appending without it for now", exc)
        self._fill_again_at = self._end + FILL_MIN_BYTES


def _fill(fd: int, start: int, size: int, *, sync: bool = True) -> int:
    """Write ``size`` fill bytes at ``start`` (and fsync): the new filled end. On a
    failure the file is cut back to ``start``: a failed fill keeps no space."""
    pos, stop = start, start + size
    try:
        while pos < stop:
            pos += os.pwrite(fd, _FILL[: min(len(_FILL), stop - pos)], pos)
        if sync:
            os.fdatasync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise
    return stop
