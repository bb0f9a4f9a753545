"""Soaks for rows 15 and 16 of issue 18, against a broker process (slow: ``-m slow``).

The memory of many unfinished lines stays within ``--max-buffered`` and goes
back to the OS once their connections close; 1 MiB lines before AUTH are
refused unread. Figures of the full attacks: ``bench/attack.py`` (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.durability.broker_process import BrokerProcess
from tests.support import LineClient

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
TOKEN = "soak-token-0123456789abcdef"


@contextlib.asynccontextmanager
async def broker(log: Path, *flags: str) -> AsyncIterator[tuple[int, int]]:
    """A broker process on loopback: (port, pid); stopped by its PID."""
    proc = await BrokerProcess.start_with(log, "--log-level", "ERROR", *flags)
    try:
        yield proc.port, proc.proc.pid
    finally:
        await proc.stop()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _hold_partial_lines(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections, each sending 1 MiB of one line that never ends."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    for _ in range(16):
        for writer in writers:
            if not writer.is_closing():
                writer.write(b"[" * (64 * 1024))
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
    return writers


async def _rss_settles_below(pid: int, limit: int, probe: LineClient) -> int:
    """RSS once it is below ``limit`` (round trips on ``probe`` between readings, 10 s at most)."""
    async with asyncio.timeout(10):
        while rss(pid) >= limit:
            await probe.call(op="PING")
            await asyncio.sleep(0.2)  # the broker hands memory back on a 1 s timer
    return rss(pid)


async def test_many_unfinished_lines_stay_within_the_budget_and_are_given_back(
    tmp_path: Path,
) -> None:
    async with (
        broker(tmp_path / "broker.log", "--max-buffered", "64m") as (port, pid),
        await LineClient.connect(port) as probe,
    ):
        assert await probe.call(op="PING") == {"ok": True}
        base = rss(pid)
        writers = await _hold_partial_lines(port, 300)  # 300 MiB offered
        assert await probe.call(op="PING") == {"ok": True}
        held = rss(pid)
        assert held - base < 160 * MIB, f"RSS grew by {(held - base) // MIB} MiB"
        for writer in writers:
            writer.close()
        after = await _rss_settles_below(pid, base + 32 * MIB, probe)
        assert after < base + 32 * MIB


async def test_megabyte_lines_before_auth_are_not_read(tmp_path: Path) -> None:
    async with broker(tmp_path / "broker.log", "--token", TOKEN) as (port, pid):
        line = b'{"op":"PUT","queue":"q","body":"' + b"x" * MIB + b'"}\n'
        base = rss(pid)
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(line * 3)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
                replies = [await reader.readline() for _ in range(3)]
                assert all(b"line_too_long" in r for r in replies), replies
            writer.close()
        assert rss(pid) - base < 64 * MIB
        async with await LineClient.connect(port) as c:
            assert await c.call(op="AUTH", token=TOKEN) == {"ok": True}
