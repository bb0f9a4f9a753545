"""The durable backend: the in-memory backend plus a log of every state change.

Owns: opening the data directory (lock, replay, restore into the engine),
the ``LogJournal`` the engine writes to, when replies may leave (with
``--fsync always`` a batch that changed state is answered only after the fsync
that covers it, the one fsync of its loop iteration, shared by every batch of
that iteration: group commit; waiting GETs completed later wait for it too),
back-pressure when the writer thread (everysec, no) falls behind, starting
compactions, and STATS' ``durability`` figures.
Must never: answer a change before it is durable under ``always``, or (everysec,
no) block the event loop on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from broker.backend.base import Replies, ReplySink, StatsProvider
from broker.backend.memory import Clock, MemoryBackend
from broker.config import Config
from broker.durability import files
from broker.durability.commit import Commit
from broker.durability.compaction import Compaction
from broker.durability.journal import LogJournal
from broker.durability.lock import DirLock
from broker.durability.log import FsyncPolicy, Log
from broker.durability.loop_writer import LoopWriter
from broker.durability.records import Msg
from broker.durability.replay import DurabilityError, ReplayState
from broker.durability.store import recover
from broker.durability.thread_writer import EVERYSEC_S, ThreadWriter
from broker.engine import Engine, Settings
from broker.errors import Unavailable, WonderQError
from broker.protocol import requests as rq
from broker.protocol.replies import GetReply, Reply, error_reply

log = logging.getLogger("wonderq.durability")

BACKLOG_HIGH = 64 * 1024 * 1024  # bytes appended but not yet written: producers wait
BACKLOG_LOW = 16 * 1024 * 1024
_RECORD_OVERHEAD = 64  # rough bytes of a Msg record beyond its body, for the live estimate


def _no_append(data: bytes) -> None:
    raise RuntimeError("the durable backend is not started")


def _order(m: Msg) -> int:
    return m.order or m.seq


def _is_empty_get(reply: Reply) -> bool:
    """A GET reply that leased nothing."""
    return isinstance(reply, GetReply) and not reply.messages


class _CommitSink:
    """Holds a waiting GET's reply until the log records of its leases are fsynced.

    Replies stay in order on the connection: an empty reply, or any reply of the
    connection while one is held, waits behind the held ones (``pending``).
    """

    __slots__ = ("_backend", "_sink", "pending", "room")

    def __init__(self, sink: ReplySink, backend: DurableBackend) -> None:
        self._sink = sink
        self._backend = backend
        self.pending = 0
        self.room = getattr(sink, "room", None)  # the connection's, passed on

    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        wal = self._backend.log
        if not self.pending and (wal.synced >= wal.appended or _is_empty_get(reply)):
            self._sink.deliver(request, reply)
            return
        self.pending += 1
        wal.commit(None).add_done_callback(functools.partial(self._committed, request, reply))

    def _committed(self, request: rq.AnyRequest, reply: Reply, fut: Commit[None]) -> None:
        self.pending -= 1
        exc = fut.exception()
        if isinstance(exc, WonderQError):
            reply = error_reply(exc)
        self._sink.deliver(request, reply)


def restore_into(engine: Engine, state: ReplayState, now: float, wall_offset: float) -> None:
    """Re-create in ``engine`` the queues' settings and paused flags, then the dedup ids
    still in their window (oldest first), then every live message (in queue order)."""
    for conf in state.queues.values():
        settings = Settings(
            conf.lease_s, conf.max_attempts, conf.max_length, conf.rate, conf.dedup_window_s
        )
        if conf.paused or settings != Settings():
            engine.restore_queue(now, conf.queue, settings, conf.paused)
    remembered = [
        (queue, dedup, seq, put_wall, window_s)
        for queue, ids in state.dedup.items()
        for dedup, (seq, put_wall, window_s) in ids.items()
    ]
    remembered.sort(key=itemgetter(3))
    engine.restore_dedup(now, remembered, wall_offset)
    live: Iterable[Msg] = state.live.values()
    if state.reordered:  # a dead-letter or redrive moved some: sort by place in queue
        live = sorted(live, key=_order)
    engine.restore_messages(now, live, wall_offset)
    engine.reserve_seqs(state.hi + 1)


def open_log(
    directory: str, segment: int, policy: FsyncPolicy, loop: asyncio.AbstractEventLoop
) -> Log:
    """The log's writer for ``policy`` (``log.py``), appending to new segment ``segment``."""
    if policy == FsyncPolicy.ALWAYS:
        return LoopWriter(directory, segment, loop)
    return ThreadWriter(
        directory, segment, loop, EVERYSEC_S if policy == FsyncPolicy.EVERYSEC else None
    )


class DurableBackend:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        crash_at: str | None = None,
    ) -> None:
        assert config.data_dir is not None, "DurableBackend needs config.data_dir"
        self.directory = config.data_dir
        self.policy = FsyncPolicy(config.fsync)
        self.config = config
        self._journal = LogJournal(_no_append)
        self.memory = MemoryBackend(
            config, first_seq=time.time_ns() // 1000, journal=self._journal, clock=clock
        )
        self.engine = self.memory.engine
        self._crash_at = crash_at
        self._lock: DirLock | None = None
        self._log: Log | None = None
        self._compaction: Compaction | None = None
        self._compaction_task: asyncio.Task[None] | None = None
        self._held: dict[object, _CommitSink] = {}  # with fsync always, per connection
        self.compactions = 0
        self._base_bytes = 0  # bytes of the files holding the state, before this run's appends
        self._base_records = 0
        self._appended_base = 0  # log.appended where _base_bytes was measured
        self._records_base = 0
        self._next_check = config.compact_min_bytes
        self.replay_s = 0.0
        self.replayed_records = 0
        self.add_stats_provider(self._stats_figures)

    @property
    def log(self) -> Log:
        assert self._log is not None, "durable backend not started"
        return self._log

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.memory.start()
        try:
            files.prepare_directory(self.directory)
            self._lock = DirLock(self.directory)
            try:
                self._open()
            except BaseException:
                self._lock.release()
                raise
        except OSError as exc:  # not a port problem: say which directory, and why
            raise DurabilityError(f"cannot use data directory {self.directory}: {exc}") from exc
        self.memory.settle()  # arm the timer for restored delays

    def _open(self) -> None:
        started = time.perf_counter()
        # ``wonderq serve`` pauses the cyclic collector around this (broker/server/collector.py)
        recovered = recover(self.directory, go_on=self.config.recover)
        now = self.memory.now()
        self._journal.wall_offset = time.time() - now
        restore_into(self.engine, recovered.state, now, self._journal.wall_offset)
        self.replay_s = time.perf_counter() - started
        self.replayed_records = recovered.state.records
        self._base_bytes = recovered.log_bytes
        self._base_records = recovered.state.records
        log.info(
            "replayed %d records from %s in %.3f s: %d messages",
            recovered.state.records,
            self.directory,
            self.replay_s,
            len(recovered.state.live),
        )
        loop = asyncio.get_running_loop()
        self._log = open_log(self.directory, recovered.next_segment, self.policy, loop)
        self._journal.append = self._log.append

    async def drain(self) -> None:
        await self.memory.drain()
        if self.policy == FsyncPolicy.ALWAYS and self._log is not None:
            # every reply held for an fsync (batches, waiting GETs) goes out with it
            with contextlib.suppress(WonderQError):  # a failed log answered them already
                await self._log.commit(None)

    async def stop(self) -> None:
        await self.memory.stop()
        task = self._compaction_task
        if task is not None and self._compaction is not None:
            self._compaction.abandon()  # it stops at the next chunk; no thread is left writing
            await task
        if self._log is not None:
            await self._log.close()
        if self._lock is not None:
            self._lock.release()

    # -------------------------------------------------------------- execution

    def open(self, sink: ReplySink) -> object:
        if self.policy != FsyncPolicy.ALWAYS:
            return self.memory.open(sink)
        held = _CommitSink(sink, self)
        owner = self.memory.open(held)
        self._held[owner] = held
        return owner

    def close(self, owner: object) -> None:
        self._held.pop(owner, None)
        self.memory.close(owner)

    def add_stats_provider(self, provider: StatsProvider) -> None:
        self.memory.add_stats_provider(provider)

    def holds(self, owner: object) -> bool:
        return self.memory.holds(owner)

    def writable(self, owner: object) -> None:
        self.memory.writable(owner)

    def execute(
        self, owner: object, requests: Sequence[rq.AnyRequest]
    ) -> Replies | Awaitable[Replies]:
        wal = self.log
        if wal.failure is not None:
            raise Unavailable(f"the durable log cannot be written ({wal.failure})")
        before = wal.appended
        replies = self.memory.execute(owner, requests)
        if not isinstance(replies, list):  # a PURGE or REDRIVE goes on in slices
            return self._after_slices(owner, replies)
        return self._durable(owner, replies, before)

    async def _after_slices(self, owner: object, pending: Awaitable[Replies]) -> Replies:
        """A batch whose replies came after a sliced job: held as any other, once all in."""
        replies = await pending
        after = self._durable(owner, replies, -1)
        return after if isinstance(after, list) else await after

    def _durable(
        self, owner: object, replies: Replies, before: int
    ) -> Replies | Awaitable[Replies]:
        """``replies``, or an awaitable of them once what they changed is durable (under
        ``always``) or the log's backlog is low enough; ``before``: the log's appended
        bytes when the batch began (-1: unknown, the batch may have changed state)."""
        wal = self.log
        if wal.appended == before:
            held = self._held.get(owner)
            if held is not None and held.pending:  # answer after the held GET replies
                return wal.commit(replies)
            return replies
        if wal.appended >= self._next_check:
            self._maybe_compact()
        if self.policy == FsyncPolicy.ALWAYS:
            return wal.commit(replies)
        if wal.backlog > BACKLOG_HIGH:
            return wal.written_to(wal.appended - BACKLOG_LOW, replies)
        return replies

    # ------------------------------------------------------------- compaction

    def log_bytes(self) -> int:
        return self._base_bytes + self.log.appended - self._appended_base

    def _maybe_compact(self) -> None:
        wal = self.log
        min_bytes = self.config.compact_min_bytes
        self._next_check = wal.appended + max(min_bytes // 8, 4096)
        if self._compaction_task is not None:
            return
        size = self.log_bytes()
        totals = self.engine.totals()
        records = totals["messages"] + self.engine.dedup_totals()["dedup_ids"]
        live = totals["bytes"] + _RECORD_OVERHEAD * records
        if size >= min_bytes and size > 2 * live:
            self.compact()

    def compact(self) -> asyncio.Task[None]:
        """Start a compaction now (if none is running) and return its task."""
        if self._compaction_task is None:
            compaction = Compaction(
                self.directory,
                self.log,
                self.engine,
                self._journal.wall_offset,
                self.memory.now,
                self._crash_at,
            )
            self._compaction = compaction
            self._compaction_task = asyncio.ensure_future(self._compact(compaction))
        return self._compaction_task

    async def _compact(self, compaction: Compaction) -> None:
        started = time.perf_counter()
        try:
            await compaction.run()
        except OSError as exc:
            log.error("compaction failed (%s); the log is intact and will be retried", exc)
            return
        finally:
            self._compaction_task = None
        if not compaction.installed:
            return
        self.compactions += 1
        self._base_bytes = compaction.snapshot_bytes
        self._base_records = compaction.snapshot_records
        self._appended_base = compaction.appended_at_rotation
        self._records_base = compaction.records_at_rotation
        log.info(
            "compaction %d done in %.3f s: snapshot of %d records, log now %d bytes",
            self.compactions,
            time.perf_counter() - started,
            compaction.snapshot_records,
            self.log_bytes(),
        )

    # ------------------------------------------------------------------ stats

    def _stats_figures(self) -> dict[str, Any]:
        wal = self._log
        if wal is None:
            return {}
        fsync_at = wal.last_fsync_at
        return {
            "durability": {
                "fsync": str(self.policy),
                "log_bytes": self.log_bytes(),
                "log_records": self._base_records + wal.records - self._records_base,
                "log_segment": wal.segment,
                "last_fsync_age": None
                if fsync_at is None
                else round(time.monotonic() - fsync_at, 3),
                "unwritten_bytes": wal.backlog,
                "compactions": self.compactions,
                "compacting": self._compaction_task is not None,
                "replayed_records": self.replayed_records,
                "replay_s": round(self.replay_s, 3),
            }
        }
