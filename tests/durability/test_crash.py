"""kill -9 a real broker (``--fsync always``) at random moments under load, restart, check promises.

Every PUT that got ``ok`` is still there (or was ACKed with ``ok``); no message
whose ACK got ``ok`` comes back; attempt counts never go backwards; ids are
never handed out twice.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.durability.broker_process import BrokerProcess, Promises
from tests.durability.workload import Workload
from tests.support import LineClient


async def crash_rounds(
    tmp_path: Path, rounds: int, seed: int, *args: str, producers: int = 4, consumers: int = 2
) -> Promises:
    data = tmp_path / "data"
    promises = Promises()
    rng = random.Random(seed)
    for _ in range(rounds):
        broker = await BrokerProcess.start(data, "--fsync", "always", *args)
        try:
            await promises.check(broker.port)
            work = Workload(promises, rng, ops=rng.randint(1, 120))
            clients = asyncio.ensure_future(
                work.run(broker.port, producers, consumers, max_ops=400)
            )
            done = asyncio.ensure_future(work.done.wait())
            await asyncio.wait([clients, done], return_when=asyncio.FIRST_COMPLETED)
            await broker.kill()  # mid-flight: clients still have requests out
            await clients
            done.cancel()
        finally:
            await broker.kill()
    broker = await BrokerProcess.start(data, "--fsync", "always", *args)
    try:
        await promises.check(broker.port)
        async with await LineClient.connect(broker.port) as c:
            fresh = await c.call(op="PUT", queue="after", body=1)
            assert fresh["id"] not in promises.put_ok | promises.acked_ok
    finally:
        assert await broker.stop() == 0
    return promises


async def test_kill_9_twenty_times_under_load_keeps_every_promise(tmp_path: Path) -> None:
    promises = await crash_rounds(tmp_path, rounds=20, seed=4)
    assert len(promises.put_ok) + len(promises.acked_ok) > 500  # the rounds did real work
    assert promises.acked_ok


async def test_kill_9_with_compactions_keeps_every_promise(tmp_path: Path) -> None:
    promises = await crash_rounds(tmp_path, 8, 7, "--compact-min", "8k", producers=1, consumers=3)
    assert promises.acked_ok
    # Whether a compaction finished between kills depends on timing; make sure one
    # does now, on the surviving data, and that every promise still holds after it.
    broker = await BrokerProcess.start(
        tmp_path / "data", "--fsync", "always", "--compact-min", "8k"
    )
    try:
        async with await LineClient.connect(broker.port) as c:
            async with asyncio.timeout(30):
                for _ in range(200):  # bounded: ~200 x 20 KiB of put+ack churn at most
                    stats = await c.call(op="STATS")
                    if stats["server"]["durability"]["compactions"] >= 1:
                        break
                    ids = (
                        await c.call(op="PUT", queue="churn", messages=[{"body": "x" * 1000}] * 20)
                    )["ids"]
                    got = await c.call(op="GET", queue="churn", max=20)
                    await c.call(op="ACK", ids=[m["id"] for m in got["messages"]])
                    assert len(ids) == 20
                else:
                    raise AssertionError("no compaction after 4 MB of churn")
        await promises.check(broker.port)
    finally:
        assert await broker.stop() == 0
    assert "compaction 1 done" in (tmp_path / "data-broker.log").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_kill_9_two_hundred_times(tmp_path: Path) -> None:
    await crash_rounds(tmp_path, 200, 11, "--compact-min", "16k", consumers=4)
