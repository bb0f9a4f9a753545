"""The ``--fsync everysec`` and ``--fsync no`` writer: a thread writes, the loop never waits.

Owns: the segment file while the server runs with ``everysec`` or ``no``, and
the writer thread. The loop hands what was appended to the thread every
``HANDOFF_S`` (a thread wake-up per loop iteration costs more than the write);
the thread writes it as one frame, and fsyncs at most once every
``sync_every_s`` (``everysec``: ``EVERYSEC_S``; ``no``: never, only when the
segment is closed by a rotation or ``close``). A rotation travels in the same
queue as the records, so it falls between the records appended before it and
after it. The thread's first failed write or fsync ends it; the loop then fails
every waiting future and every rotation not yet done (``Log._failed``).
How far behind the thread may fall is the backend's (``backlog``, ``written_to``).
Must never: block the event loop on a file, or keep writing after a failure.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time

from broker.durability import files
from broker.durability.log import Log, resolve
from broker.durability.records import frame

EVERYSEC_S = 1.0
#: appended records reach the writer thread this often
HANDOFF_S = 0.005


class ThreadWriter(Log):
    def __init__(
        self,
        directory: str,
        segment: int,
        loop: asyncio.AbstractEventLoop,
        sync_every_s: float | None,
    ) -> None:
        super().__init__(
            directory, segment, loop, functools.partial(loop.call_later, HANDOFF_S, self._flush)
        )
        self._sync_every_s = sync_every_s  # None: only on rotation and close
        self._rotations: dict[int, asyncio.Future[None]] = {}  # by segment, until done
        # shared with the writer thread, under _cond: records, and segment numbers
        # to rotate to, in order
        self._cond = threading.Condition()
        self._pending: list[bytes | int] = []
        self._pending_end = 0  # ``appended`` when _pending was last extended
        self._closing = False
        self._fd = files.create_segment(directory, segment, append=True)
        self._thread = threading.Thread(target=self._run, name="wonderq-log-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ loop side

    def _flush(self) -> None:
        """Give what was appended to the writer thread."""
        # an early call (rotate, close) leaves the scheduled one nothing to do
        buf = self._take()
        if not buf:
            return
        with self._cond:
            self._pending.extend(buf)
            self._pending_end = self.appended
            self._cond.notify()

    def _rotate(self, done: asyncio.Future[None]) -> None:
        self._rotations[self.segment] = done
        with self._cond:
            self._pending.append(self.segment)
            self._cond.notify()

    async def close(self) -> None:
        """Write and fsync everything appended, then stop the thread."""
        self._flush()
        with self._cond:
            self._closing = True
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)

    def _rotated(self, segment: int) -> None:
        done = self._rotations.pop(segment, None)
        if done is not None:
            resolve(done)

    def _failed(self, exc: OSError) -> None:
        super()._failed(exc)
        rotations, self._rotations = self._rotations, {}
        for done in rotations.values():
            if not done.done():
                done.set_exception(exc)

    # ---------------------------------------------------------- writer side

    def _run(self) -> None:
        try:
            self._write_loop()
        except OSError as exc:
            self._loop.call_soon_threadsafe(self._failed, exc)
        finally:
            if self._fd >= 0:
                os.close(self._fd)

    def _write_loop(self) -> None:
        written = 0
        dirty = False  # written since the last fsync
        last_sync = time.monotonic()
        while True:
            pending, end, closing = self._wait_for_work(dirty, last_sync)
            dirty = self._write(pending, dirty)
            written = max(written, end)
            self.written = written
            if dirty and (closing or self._sync_due(last_sync)):
                os.fdatasync(self._fd)
                self.fsyncs += 1
                dirty = False
                last_sync = self.last_fsync_at = time.monotonic()
            if not dirty:
                self.synced = written  # store first, then look for waiters (see Log.commit)
            if self._waiting():
                self._loop.call_soon_threadsafe(self._progress)
            if closing:
                return

    def _sync_due(self, last_sync: float) -> bool:
        every = self._sync_every_s
        return every is not None and time.monotonic() - last_sync >= every

    def _wait_for_work(self, dirty: bool, last_sync: float) -> tuple[list[bytes | int], int, bool]:
        every = self._sync_every_s
        with self._cond:
            while not self._pending and not self._closing:
                if dirty and every is not None:
                    left = last_sync + every - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                else:
                    self._cond.wait()
            pending, self._pending = self._pending, []
            return pending, self._pending_end, self._closing

    def _write(self, pending: list[bytes | int], dirty: bool) -> bool:
        """Write ``pending`` in order, one frame per run of records; whether the
        segment now holds bytes written since its last fsync."""
        chunk: list[bytes] = []
        for item in pending:
            if isinstance(item, bytes):
                chunk.append(item)
                continue
            if chunk:
                _write_all(self._fd, frame(chunk))
                chunk = []
            self._switch(item)
            dirty = False
        if chunk:
            _write_all(self._fd, frame(chunk))
            dirty = True
        return dirty

    def _switch(self, segment: int) -> None:
        """Fsync and close the segment, start ``segment``."""
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._fd = files.create_segment(self.directory, segment, append=True)
        self._loop.call_soon_threadsafe(self._rotated, segment)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
