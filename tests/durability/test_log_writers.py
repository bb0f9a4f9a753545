"""The log's writers: what every fsync policy's writer promises behind the one ``Log`` interface.

A failed write fails what waits and everything after it, rotations included; a
rotation falls between the records around it; the writer thread (everysec, no)
keeps the loop off the files, fsyncs when its policy says, and holds producers
back when it falls behind. Failures are injected by wrapping ``os`` calls for
the segment's own file descriptor only.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.config import Config
from broker.durability import backend as backend_module
from broker.durability import records as rec
from broker.durability.backend import DurableBackend, open_log
from broker.durability.commit import Commit
from broker.durability.files import segment_name, segment_path
from broker.durability.log import FsyncPolicy, Log
from broker.durability.replay import ReplayState, scan
from broker.durability.thread_writer import ThreadWriter
from broker.errors import Unavailable
from broker.protocol import requests as rq
from broker.protocol.replies import Reply

POLICIES = [p.value for p in FsyncPolicy]
WRITER_THREAD = "wonderq-log-writer"


def put(body: int) -> rq.Put:
    return rq.Put(queue="q", body=msgspec.Raw(b"%d" % body))


def record(seq: int) -> bytes:
    return rec.encode(rec.Msg(seq, "q", b"1", None, 0, 5, 1000.0))


class Sink:
    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        pass


@asynccontextmanager
async def started(data: Path, fsync: str) -> AsyncIterator[DurableBackend]:
    b = DurableBackend(Config(port=0, data_dir=str(data), fsync=fsync))
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@asynccontextmanager
async def opened(data: Path, policy: FsyncPolicy) -> AsyncIterator[Log]:
    wal = open_log(str(data), 1, policy, asyncio.get_running_loop())
    try:
        yield wal
    finally:
        await wal.close()


def fd_of(path: str) -> int:
    """The descriptor this process holds open on ``path``."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == path:
                return int(name)
        except OSError:  # the descriptor of the listing itself is gone by now
            continue
    raise AssertionError(f"{path} is not open")


def break_fd(monkeypatch: pytest.MonkeyPatch, fd: int) -> None:
    """Every write and fsync of ``fd`` fails from now on (a dying disk)."""
    for name in ("write", "pwrite", "fdatasync", "fsync"):
        real: Callable[..., Any] = getattr(os, name)

        def broken(target: int, *args: Any, _real: Callable[..., Any] = real) -> Any:
            if target == fd:
                raise OSError(errno.EIO, "injected I/O error")
            return _real(target, *args)

        monkeypatch.setattr(os, name, broken)


def live_seqs(path: Path) -> list[int]:
    state = ReplayState()
    scan(path.read_bytes(), str(path), state)
    return sorted(state.live)


@pytest.mark.parametrize("fsync", POLICIES)
async def test_a_failed_write_fails_what_waits_the_rotation_behind_it_and_every_later_change(
    tmp_path: Path, fsync: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with started(tmp_path, fsync) as b:
        wal = b.log
        owner = b.open(Sink())
        b.execute(owner, [put(1)])
        assert await wal.written_to(wal.appended, "first") == "first"
        kept = wal.written
        break_fd(monkeypatch, fd_of(segment_path(str(tmp_path), wal.segment)))
        result = b.execute(owner, [put(2)])
        waiting = wal.written_to(wal.appended, "second")
        rotated = wal.rotate()  # everysec, no: queued behind the write that fails
        async with asyncio.timeout(10):
            if isinstance(result, Commit):  # always: the reply waited for the fsync
                with pytest.raises(Unavailable, match="injected I/O error"):
                    await result
            with pytest.raises(Unavailable, match="injected I/O error"):
                await waiting
            with pytest.raises(OSError, match="injected I/O error"):
                await rotated
        assert wal.failure is not None and wal.written == kept  # nothing written after
        with pytest.raises(Unavailable):
            b.execute(owner, [put(3)])
        late = wal.commit(None)
        assert late.done() and isinstance(late.exception(), Unavailable)
        with pytest.raises(OSError, match="injected I/O error"):
            await wal.rotate()
    assert live_seqs(tmp_path / segment_name(1)) != []  # the first PUT is there


@pytest.mark.parametrize("policy", list(FsyncPolicy))
async def test_a_rotation_falls_between_the_records_around_it(
    tmp_path: Path, policy: FsyncPolicy
) -> None:
    async with opened(tmp_path, policy) as wal:
        wal.append(record(1))
        wal.append(record(2))
        rotated = wal.rotate()
        wal.append(record(3))
        await rotated
        assert wal.segment == 2
        assert live_seqs(tmp_path / segment_name(1)) == [1, 2]  # complete once rotated
    assert live_seqs(tmp_path / segment_name(2)) == [3]
    assert wal.synced == wal.written == wal.appended


async def test_no_fsyncs_only_when_the_segment_is_closed(tmp_path: Path) -> None:
    async with opened(tmp_path, FsyncPolicy.NO) as wal:
        wal.append(record(1))
        synced = wal.commit("synced")
        async with asyncio.timeout(10):
            assert await wal.written_to(wal.appended, "written") == "written"
        assert not synced.done() and wal.synced == 0 and wal.fsyncs == 0
    assert synced.result() == "synced"
    assert wal.fsyncs == 1 and wal.last_fsync_at is not None


async def test_a_sync_interval_fsyncs_without_a_close(tmp_path: Path) -> None:
    wal = ThreadWriter(str(tmp_path), 1, asyncio.get_running_loop(), sync_every_s=0.01)
    try:
        wal.append(record(1))
        async with asyncio.timeout(10):
            assert await wal.commit("synced") == "synced"
        assert wal.fsyncs == 1 and wal.last_fsync_at is not None
    finally:
        await wal.close()


def block_writer_thread(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """The writer thread's next write waits for ``release``; ``entered`` says it is there."""
    entered, release = threading.Event(), threading.Event()
    real = os.write

    def write(fd: int, data: Any) -> int:
        if threading.current_thread().name == WRITER_THREAD:
            entered.set()
            release.wait(10)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    return entered, release


@pytest.mark.parametrize("fsync", ["everysec", "no"])
async def test_producers_wait_while_the_writer_thread_is_behind(
    tmp_path: Path, fsync: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "BACKLOG_HIGH", 1)
    monkeypatch.setattr(backend_module, "BACKLOG_LOW", 0)
    async with started(tmp_path, fsync) as b:
        entered, release = block_writer_thread(monkeypatch)
        try:
            result = b.execute(b.open(Sink()), [put(1)])
            assert isinstance(result, Commit)  # more than BACKLOG_HIGH is unwritten
            assert await asyncio.to_thread(entered.wait, 10)
            assert not result.done() and b.log.backlog == b.log.appended > 0
            release.set()
            async with asyncio.timeout(10):
                replies = await result
            assert len(replies) == 1 and b.log.backlog == 0
        finally:
            release.set()


@pytest.mark.parametrize("fsync", ["everysec", "no"])
async def test_the_writer_thread_keeps_the_loop_off_the_files(
    tmp_path: Path, fsync: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[str] = []
    loop_thread = threading.get_ident()
    async with started(tmp_path, fsync) as b:  # (it creates its first segment on the loop)
        for name in ("open", "write", "pwrite", "fdatasync", "fsync", "ftruncate"):
            real: Callable[..., Any] = getattr(os, name)

            def spy(*args: Any, _real: Callable[..., Any] = real, _name: str = name) -> Any:
                if threading.get_ident() == loop_thread:
                    on_loop.append(_name)
                return _real(*args)

            monkeypatch.setattr(os, name, spy)
        owner = b.open(Sink())
        for n in range(50):
            b.execute(owner, [put(n)])
        await b.log.rotate()
        b.execute(owner, [put(50)])
        async with asyncio.timeout(10):
            await b.log.written_to(b.log.appended, None)
    assert on_loop == []  # the writes, the rotation and the close's fsync were the thread's
    assert len(live_seqs(tmp_path / segment_name(1))) == 50
    assert len(live_seqs(tmp_path / segment_name(2))) == 1
