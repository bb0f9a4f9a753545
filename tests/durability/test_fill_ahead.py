"""The ``--fsync always`` writer's fill ahead: never zeros, never the room the data needs.

The free space the writer sees is set by replacing ``os.fstatvfs`` (the real
disk-full case is row 21 in test_data_dir.py, on a small tmpfs); a failing fill
by making the fill thread's ``pwrite`` fail.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.durability import loop_writer
from broker.durability import records as rec
from broker.durability.files import segment_path
from broker.durability.loop_writer import FILL_FIRST_AT, FILL_MIN_BYTES, LoopWriter
from broker.durability.replay import ReplayState, scan
from broker.durability.tail import FILL_BYTE

MIB = 1024 * 1024


def free_space(monkeypatch: pytest.MonkeyPatch, free: int) -> list[int]:
    """The file system has ``free`` bytes available; the list counts the look-ups."""
    calls: list[int] = []

    def fstatvfs(fd: int) -> os.statvfs_result:
        calls.append(fd)
        return os.statvfs_result((4096, 4096, 1 << 20, free // 4096, free // 4096, 0, 0, 0, 0, 255))

    monkeypatch.setattr(os, "fstatvfs", fstatvfs)
    return calls


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[LoopWriter]:
    wal = LoopWriter(str(tmp_path), 1, asyncio.get_running_loop())
    try:
        yield wal
    finally:
        await wal.close()


async def write(wal: LoopWriter, n: int, size: int = 100) -> None:
    for seq in range(n):
        wal.append(rec.encode(rec.Msg(seq + 1, "q", b"x" * size, None, 0, 5, 1.0)))
    await wal.commit(None)


def segment(wal: LoopWriter) -> bytes:
    with open(segment_path(wal.directory, wal.segment), "rb") as f:
        return f.read()


async def test_a_segment_holds_its_frames_then_fill_never_a_hole(writer: LoopWriter) -> None:
    """What a crash leaves: intact frames, then fill to the end (a torn tail, not damage)."""
    assert segment(writer)[:FILL_FIRST_AT] == bytes([FILL_BYTE]) * FILL_FIRST_AT
    await write(writer, 20)
    writer._fill_wait()
    raw = segment(writer)
    result = scan(raw, "segment", ReplayState())
    assert result.records == 20 and result.damage is None
    assert result.torn == "the space filled ahead of the data"
    assert raw[result.good_end :].count(FILL_BYTE) == len(raw) - result.good_end
    assert len(raw) == FILL_FIRST_AT + loop_writer.FILL_AHEAD_BYTES


async def test_a_fill_takes_at_most_half_the_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free_space(monkeypatch, 5 * MIB)
    wal = LoopWriter(str(tmp_path), 1, asyncio.get_running_loop())
    try:
        wal._fill_wait()
        assert len(segment(wal)) == FILL_FIRST_AT + 2 * MIB  # 2.5 MiB, in whole MiB
    finally:
        await wal.close()


async def test_a_nearly_full_disk_gets_no_fill_and_is_looked_at_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = free_space(monkeypatch, 3 * MIB // 2)  # half of it is under FILL_MIN_BYTES
    wal = LoopWriter(str(tmp_path), 1, asyncio.get_running_loop())
    try:
        await write(wal, 10)
        assert len(segment(wal)) == wal.appended + rec.HEADER_SIZE + 5  # frames only
        looked = len(calls)
        await write(wal, 10)  # far less than FILL_MIN_BYTES later: not looked at again
        assert len(calls) == looked
        await write(wal, FILL_MIN_BYTES // 1000, size=1000)
        assert len(calls) > looked
    finally:
        await wal.close()


async def test_a_failed_fill_gives_its_space_back_and_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = os.pwrite
    written: list[int] = []

    def pwrite(fd: int, data: Any, pos: int) -> int:
        if threading.current_thread().name.startswith("wonderq-log-fill"):
            if written:  # the second chunk of the fill finds the disk full
                raise OSError(errno.ENOSPC, "No space left on device")
            written.append(pos)
        n: int = real(fd, data, pos)
        return n

    monkeypatch.setattr(os, "pwrite", pwrite)
    wal = LoopWriter(str(tmp_path), 1, asyncio.get_running_loop())
    try:
        wal._fill_wait()
        assert written == [FILL_FIRST_AT]
        assert len(segment(wal)) == FILL_FIRST_AT  # the chunk it wrote was cut off again
        assert "filling the log ahead failed ([Errno 28] No space left on device)" in caplog.text
        await write(wal, 1000)  # past the filled end: appended
        assert wal.failure is None
        assert scan(segment(wal), "segment", ReplayState()).records == 1000
    finally:
        await wal.close()
