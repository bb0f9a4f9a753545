"""--max-memory against a broker process's RSS: what it counts is what the process holds.

A broker is filled with the messages that hold the most beside their bodies
(1-byte bodies, each keyed and delayed) until PUT says memory_limit; its RSS
must have grown by about the limit: not by many times it (as when only bodies
counted: 1 MB of bodies was 800 MB of RSS), nor by a small part of it. The
fast variant fills 32 MiB; the slow one 256 MiB (``-m slow``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import pytest

from tests.conftest import one_loop
from tests.support import BrokerProcess, LineClient

MIB = 1024 * 1024

pytestmark = pytest.mark.memory_only("--max-memory (Redis has maxmemory instead)")


def broker(log: Path, *flags: str) -> Awaitable[BrokerProcess]:
    """A quiet broker process on loopback, stopped by its PID when its block ends."""
    return BrokerProcess.start_with(log, "--log-level", "ERROR", *flags)


async def fill_until_refused(c: LineClient, batch: int) -> int:
    """1-byte keyed, delayed messages, ``batch`` a PUT, then fewer, until none fits."""
    stored = 0
    for size in (batch, 100, 1):
        for _ in range(10_000_000 // size):  # bounded; ends at the first refusal
            messages = [{"body": 1, "key": f"k{stored + j}", "delay": 3600} for j in range(size)]
            reply = await c.call(op="PUT", queue="mem", messages=messages)
            if not reply["ok"]:
                assert reply["error"] == "memory_limit", reply
                break
            stored += size
    return stored


async def check_rss_follows_the_limit(tmp_path: Path, limit_mib: int) -> None:
    limit = limit_mib * MIB
    async with (
        await broker(tmp_path / "broker.log", "--max-memory", f"{limit_mib}m") as proc,
        await LineClient.connect(proc.port) as c,
    ):
        assert await c.call(op="PING") == {"ok": True}
        base = proc.rss()
        stored = await fill_until_refused(c, 1000)
        await asyncio.sleep(0.2)  # real time (no event to await: RSS is read as it is)
        grown = proc.rss() - base
        memory = (await c.call(op="STATS"))["server"]["memory"]
        assert limit - 2000 <= memory <= limit  # filled to the limit, within one message
        assert stored > limit // 1000  # each 1-byte message counts about 600 bytes
        assert 0.7 * limit < grown < 1.3 * limit, (
            f"RSS grew {grown / MIB:.1f} MiB for --max-memory {limit_mib} MiB ({stored} messages)"
        )


@one_loop  # its broker is a process
async def test_rss_grows_by_about_max_memory_when_filled_to_it(tmp_path: Path) -> None:
    await check_rss_follows_the_limit(tmp_path, 32)


@pytest.mark.slow
async def test_rss_grows_by_about_max_memory_of_256_mib(tmp_path: Path) -> None:
    await check_rss_follows_the_limit(tmp_path, 256)
