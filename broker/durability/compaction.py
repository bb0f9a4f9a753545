"""Compaction: rewrite the log from live state, in the background (Redis's AOF rewrite).

Owns: one compaction run, in steps that each leave a recoverable directory:
  1. rotate: new records go to a fresh segment K; the ids of the live
     messages, the queues' settings and paused flags and the dedup ids still
     in their window are captured at that instant, on the event loop;
  2. write ``snap-K.wqs.tmp`` in chunks (encoding on the loop between other
     work, writes and the fsync in a thread), then fsync it;
  3. rename it to ``snap-K.wqs`` and fsync the directory: from here on the
     state is snapshot K + segments K...;
  4. delete the segments and snapshots older than K.
A crash before 3 leaves the old files, which still hold everything (the
``.tmp`` is deleted on start); a crash after 3 leaves old files that start
ignores and deletes. A message may change between steps 1 and 2; the records
of segment K carry absolute values, so replaying them over a snapshot that
saw a later state still gives the right one.
``crash_at`` (tests only) names a step after which the process kills itself.
Must never: block the event loop on a file, or delete a file before the
snapshot that replaces it is durable.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from itertools import groupby

from broker.durability import files
from broker.durability import records as rec
from broker.durability.journal import message_record, queue_record
from broker.durability.log import Log
from broker.engine import Engine, Message

CHUNK = 2000  # messages encoded per loop turn

STEPS = ("rotated", "partial", "written", "renamed", "cleaned")


class Compaction:
    def __init__(
        self,
        directory: str,
        log: Log,
        engine: Engine,
        wall_offset: float,
        clock: Callable[[], float],
        crash_at: str | None = None,
    ) -> None:
        self._dir = directory
        self._log = log
        self._engine = engine
        self._wall_offset = wall_offset
        self._clock = clock  # the engine's clock (its dedup windows end on it)
        self._crash_at = crash_at
        self.segment = 0  # the segment K the snapshot starts
        self.snapshot_bytes = 0
        self.snapshot_records = 0
        self.appended_at_rotation = 0  # log.appended when segment K began
        self.records_at_rotation = 0
        self.abandoned = False  # set by abandon(): stop before the snapshot replaces anything
        self.installed = False

    def abandon(self) -> None:
        """Stop soon (server shutdown); the old files still hold the whole state."""
        self.abandoned = True

    def _step(self, name: str) -> None:
        if self._crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    async def run(self) -> None:
        engine, log = self._engine, self._log
        next_seq = engine.next_seq
        seqs = engine.live_seqs()  # ids only: compact messages have no object to hold
        queue_state = self._queue_state()
        rotated = log.rotate()
        self.segment = k = log.segment
        self.appended_at_rotation = log.appended
        self.records_at_rotation = log.records
        await rotated
        self._step("rotated")
        f = await asyncio.to_thread(files.create_snapshot, self._dir, k)
        try:
            first = rec.frame([rec.encode(rec.Meta(next_seq)), *queue_state])
            await asyncio.to_thread(f.write, first)
            self._step("partial")
            size, records = len(first), 1 + len(queue_state)
            lookup, encode, offset = engine.lookup, rec.encode, self._wall_offset
            for i in range(0, len(seqs), CHUNK):
                if self.abandoned:
                    break
                # each message as it is now; skip those acked or purged since step 1
                held = (lookup(seq) for seq in seqs[i : i + CHUNK])
                parts = [encode(message_record(m, offset)) for m in held if isinstance(m, Message)]
                if not parts:
                    continue
                chunk = rec.frame(parts)
                await asyncio.to_thread(f.write, chunk)
                size += len(chunk)
                records += len(parts)
            if not self.abandoned:
                await asyncio.to_thread(f.flush)
                await asyncio.to_thread(os.fsync, f.fileno())
        finally:
            f.close()
        if self.abandoned:
            await asyncio.to_thread(files.remove, self._dir, [files.unfinished_snapshot_name(k)])
            return
        self._step("written")
        await asyncio.to_thread(files.install_snapshot, self._dir, k)
        self.snapshot_bytes, self.snapshot_records = size, records
        self.installed = True
        self._step("renamed")
        await asyncio.to_thread(self._cleanup, k)
        self._step("cleaned")

    def _queue_state(self) -> list[bytes]:
        """The encoded records of every queue's settings and paused flag, and of every
        dedup id still in its window (one record per queue, first put and window)."""
        engine, offset = self._engine, self._wall_offset
        out = [rec.encode(queue_record(q)) for q in engine.configured_queues()]
        remembered = engine.dedup_ids(self._clock())
        for (queue, put_at, window_s), run in groupby(remembered, key=lambda r: (r[0], r[3], r[4])):
            entries = list(run)
            ids = [e[1] for e in entries]
            seqs = [e[2] for e in entries]
            out.append(rec.encode(rec.Dedup(queue, put_at + offset, window_s, ids, seqs)))
        return out

    def _cleanup(self, k: int) -> None:
        files.remove(self._dir, files.list_files(self._dir).older_than(k))
