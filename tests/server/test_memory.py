"""The memory guard (--max-memory) end to end: PUTs past it fail, nothing stored is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerFactory
from tests.support import BrokerProcess, LineClient

LIMIT = 1000
BODY = "m" * 98  # 100 bytes of raw JSON with its quotes


@pytest.mark.memory_only(
    "--max-memory does not apply to a Redis backend (serve refuses it): Redis's maxmemory "
    "does, and a full Redis answers memory_limit (tests/redis/test_full_redis.py)"
)
async def test_memory_limit_refuses_new_bodies_and_keeps_stored_ones(
    server_factory: ServerFactory,
) -> None:
    async with (
        server_factory(max_memory=LIMIT) as srv,
        await LineClient.connect(srv.port) as c,
        await LineClient.connect(srv.port) as other,
    ):
        ids = []
        for i in range(LIMIT // 100):
            reply = await c.call(op="PUT", queue="mem", body=BODY, rid=i)
            assert reply["ok"] is True, reply
            ids.append(reply["id"])
        full = await c.call(op="PUT", queue="mem", body=BODY, rid="over")
        assert full["error"] == "memory_limit" and full["rid"] == "over"
        assert "max-memory" in full["message"]
        assert (await other.call(op="PUT", queue="elsewhere", body="x"))["error"] == "memory_limit"
        # a batch that does not fit stores nothing, not even its first messages
        batch = await c.call(op="PUT", queue="mem", messages=[{"body": 1}, {"body": BODY}])
        assert batch["error"] == "memory_limit"
        stats = await c.call(op="STATS")
        assert stats["server"]["bytes"] == LIMIT and stats["server"]["messages"] == len(ids)
        # everything stored is intact and deliverable
        got = await c.call(op="GET", queue="mem", max=100, lease=600)
        assert [m["id"] for m in got["messages"]] == ids
        assert all(m["body"] == BODY for m in got["messages"])
        # leased bodies still count; acking frees room
        assert (await c.call(op="PUT", queue="mem", body=1))["error"] == "memory_limit"
        assert (await c.call(op="ACK", ids=ids[:2]))["acked"] == 2
        assert (await c.call(op="PUT", queue="mem", body=BODY))["ok"] is True
        assert (await c.call(op="STATS"))["server"]["bytes"] == LIMIT - 100
        # releasing (disconnect) gives the leased ones back, none lost
        await c.close()
        again = await other.call(op="GET", queue="mem", max=100, wait=5)
        assert len(again["messages"]) == len(ids) - 2 + 1


async def test_cli_max_memory_flag(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    async with await BrokerProcess.start_with(log, "--max-memory", "1k") as broker:
        async with await LineClient.connect(broker.port) as c:
            assert (await c.call(op="PUT", queue="q", body="y" * 1000))["ok"] is True
            reply = await c.call(op="PUT", queue="q", body="y" * 100)
            assert reply["error"] == "memory_limit" and "1024" in reply["message"]
        assert await broker.stop() == 0
