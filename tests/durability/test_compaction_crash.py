"""A broker that dies at each step of a compaction leaves a directory it can start from."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from broker.durability.compaction import STEPS
from broker.durability.files import file_number
from tests.durability.broker_process import BrokerProcess, Promises
from tests.support import LineClient

_LOST = (ConnectionError, OSError, asyncio.IncompleteReadError)


async def churn(port: int, promises: Promises, rounds: int) -> None:
    """Put 20, ack 18 of them, ``rounds`` times: a log of mostly dead records."""
    async with await LineClient.connect(port) as c:
        for _ in range(rounds):
            reply = await c.call(op="PUT", queue="q", messages=[{"body": n} for n in range(20)])
            promises.put_ok.update(reply["ids"])
            got = await c.call(op="GET", queue="q", max=20)
            for msg in got["messages"]:
                promises.delivered(msg)
            for msg in got["messages"][:18]:
                promises.ack_unknown.add(msg["id"])
                assert await c.call(op="ACK", id=msg["id"]) == {"ok": True}
                promises.acked_ok.add(msg["id"])
                promises.put_ok.discard(msg["id"])


def data_files(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if file_number(p.name) is not None)


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_at_each_compaction_step_loses_nothing(tmp_path: Path, step: str) -> None:
    data = tmp_path / "data"
    promises = Promises()
    args = ("--fsync", "always", "--compact-min", "4k")
    broker = await BrokerProcess.start(data, *args, env={"WONDERQ_COMPACTION_CRASH_AT": step})
    try:
        with contextlib.suppress(*_LOST):  # the broker dies under the client
            await churn(broker.port, promises, rounds=200)
        async with asyncio.timeout(10):
            code = await broker.proc.wait()
        assert code == -9, f"the broker should have killed itself at step {step!r}"
    finally:
        await broker.kill()
    assert promises.acked_ok
    broker = await BrokerProcess.start(data, *args)
    try:
        assert await promises.check(broker.port) > 0
        assert not [n for n in (p.name for p in data.iterdir()) if n.endswith(".tmp")]
        await churn(broker.port, promises, rounds=60)  # this time a compaction completes
        async with await LineClient.connect(broker.port) as c:
            stats = await c.call(op="STATS")
        assert stats["server"]["durability"]["compactions"] >= 1, stats
    finally:
        assert await broker.stop() == 0
    snapshots = [n for n in data_files(data) if n.startswith("snap-")]
    assert len(snapshots) == 1, data_files(data)
    broker = await BrokerProcess.start(data, *args)
    try:
        await promises.check(broker.port)
    finally:
        assert await broker.stop() == 0
