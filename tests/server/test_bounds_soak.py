"""Soaks for rows 15 and 16 of issue 18, against a broker process (slow: ``-m slow``).

The memory of many unfinished lines stays within ``--max-buffered`` and goes
back to the OS once their connections close; a 1 MiB line before AUTH is
refused unread and its connection closed. Figures of the full attacks: ``bench/attack.py`` (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path

import pytest

from tests.support import BrokerProcess, LineClient

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
TOKEN = "soak-token-0123456789abcdef"


def broker(log: Path, *flags: str) -> Awaitable[BrokerProcess]:
    """A quiet broker process on loopback, stopped by its PID when its block ends."""
    return BrokerProcess.start_with(log, "--log-level", "ERROR", *flags)


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


async def _rss_settles_below(proc: BrokerProcess, limit: int, probe: LineClient) -> int:
    """RSS once it is below ``limit`` (round trips on ``probe`` between readings, 10 s at most)."""
    async with asyncio.timeout(10):
        while proc.rss() >= limit:
            await probe.call(op="PING")
            await asyncio.sleep(0.2)  # real time: the broker hands memory back on a 1 s timer
    return proc.rss()


async def test_many_unfinished_lines_stay_within_the_budget_and_are_given_back(
    tmp_path: Path,
) -> None:
    async with (
        await broker(tmp_path / "broker.log", "--max-buffered", "64m") as proc,
        await LineClient.connect(proc.port) as probe,
    ):
        assert await probe.call(op="PING") == {"ok": True}
        base = proc.rss()
        writers = await _hold_partial_lines(proc.port, 300)  # 300 MiB offered
        assert await probe.call(op="PING") == {"ok": True}
        held = proc.rss()
        assert held - base < 160 * MIB, f"RSS grew by {(held - base) // MIB} MiB"
        for writer in writers:
            writer.close()
        after = await _rss_settles_below(proc, base + 32 * MIB, probe)
        assert after < base + 32 * MIB


async def test_megabyte_lines_before_auth_are_not_read(tmp_path: Path) -> None:
    async with await broker(tmp_path / "broker.log", "--token", TOKEN) as proc:
        line = b'{"op":"PUT","queue":"q","body":"' + b"x" * MIB + b'"}\n'
        base = proc.rss()
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
            writer.write(line * 3)
            replies = []
            with contextlib.suppress(ConnectionError):  # (a reset: it closed, our bytes unread)
                await writer.drain()
                async with asyncio.timeout(10):
                    while line_read := await reader.readline():  # until it closes
                        replies.append(line_read)
            # at most the one refusal (a reset may take it): the connection closed on it
            assert len(replies) <= 1 and all(b"line_too_long" in r for r in replies), replies
            writer.close()
        assert proc.rss() - base < 64 * MIB
        async with await LineClient.connect(proc.port) as c:
            assert await c.call(op="AUTH", token=TOKEN) == {"ok": True}
