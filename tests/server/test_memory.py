"""The memory guard (--max-memory) end to end: PUTs past it fail, nothing stored is lost.

What it counts is the engine's footprint (engine/footprint.py): bodies and what
the broker keeps with them; STATS says it as ``server.memory``. (That a broker
process's RSS follows it: tests/server/test_memory_accounting.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerFactory, one_backend, one_loop
from tests.support import BrokerProcess, LineClient

LIMIT = 60_000
BODY = "m" * 98  # 100 bytes of raw JSON with its quotes

pytestmark = pytest.mark.memory_only(
    "--max-memory does not apply to a Redis backend (serve refuses it): Redis's maxmemory "
    "does, and a full Redis answers memory_limit (tests/redis/test_full_redis.py)"
)


async def test_memory_limit_refuses_new_messages_and_keeps_stored_ones(
    server_factory: ServerFactory,
) -> None:
    async with (
        server_factory(max_memory=LIMIT) as srv,
        await LineClient.connect(srv.port) as c,
        await LineClient.connect(srv.port) as other,
    ):
        ids = []
        for i in range(10_000):  # (bounded: 60 kB holds a few hundred)
            reply = await c.call(op="PUT", queue="mem", body=BODY, key=f"k{i}", rid=i)
            if not reply["ok"]:
                break
            ids.append(reply["id"])
        assert reply["error"] == "memory_limit" and "max-memory" in reply["message"]
        assert 50 < len(ids) < LIMIT // 100  # each keyed message holds more than its body
        stats = await c.call(op="STATS")
        assert stats["server"]["memory"] <= LIMIT
        assert stats["server"]["bytes"] == 100 * len(ids)
        assert (await other.call(op="PUT", queue="elsewhere", body="x"))["error"] == "memory_limit"
        assert (await other.call(op="QUEUES"))["queues"] == ["mem"]  # and no queue was made
        batch = await c.call(op="PUT", queue="mem", messages=[{"body": 1}] * 100)
        assert batch["error"] == "memory_limit"  # all or nothing
        assert (await c.call(op="STATS"))["server"]["messages"] == len(ids)
        # everything stored is intact and deliverable
        got = await c.call(op="GET", queue="mem", max=1000, lease=600)
        assert sorted(m["id"] for m in got["messages"]) == sorted(ids)
        assert all(m["body"] == BODY for m in got["messages"])
        # leased messages still count; acking frees room
        assert (await c.call(op="PUT", queue="mem", body=1, key="x"))["error"] == "memory_limit"
        assert (await c.call(op="ACK", ids=ids[:10]))["acked"] == 10
        assert (await c.call(op="PUT", queue="mem", body=BODY, key="again"))["ok"] is True
        # releasing (disconnect) gives the leased ones back, none lost
        await c.close()
        again = await other.call(op="GET", queue="mem", max=1000, wait=5)
        assert len(again["messages"]) == len(ids) - 10 + 1


@one_backend  # its brokers are processes
@one_loop
async def test_cli_max_memory_flag(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    # room for one queue (footprint.QUEUE, 4100) and one message of 1000 bytes, not two
    async with await BrokerProcess.start_with(log, "--max-memory", "6k") as broker:
        async with await LineClient.connect(broker.port) as c:
            assert (await c.call(op="PUT", queue="q", body="y" * 1000))["ok"] is True
            reply = await c.call(op="PUT", queue="q", body="y" * 1000)
            assert reply["error"] == "memory_limit" and "6144" in reply["message"]
        assert await broker.stop() == 0
