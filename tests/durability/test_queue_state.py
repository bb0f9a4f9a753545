"""What issue 13 keeps across a restart: headers, dedup ids, queue settings and paused
flags, and what it must not bring back (deleted queues, removed messages). Real broker
processes (a clean stop, and kill -9), a compaction in a real server, and the records
themselves (old logs without the new fields still replay)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

from broker.config import Config
from broker.durability import records as rec
from broker.durability.backend import DurableBackend, restore_into
from broker.durability.files import segment_name
from broker.durability.replay import ReplayState, scan
from broker.engine import Engine, Message
from broker.server import Server
from tests.durability.broker_process import BrokerProcess
from tests.support import LineClient

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
JOBS_SETTINGS = {"lease": 120.0, "max_length": 5, "rate": 2.0, "dedup_window": 600.0}


async def fill(c: LineClient) -> dict[str, Any]:
    """Every kind of queue state issue 13 adds; returns what to look for after a restart."""
    kept = (await c.call(op="PUT", queue="mail", body=1, dedup="o1", headers=TRACE))["id"]
    acked = (await c.call(op="PUT", queue="mail", body=2, dedup="o2"))["id"]
    (msg,) = (await c.call(op="GET", queue="mail"))["messages"]
    assert msg["id"] == kept and msg["headers"] == TRACE
    (second,) = (await c.call(op="GET", queue="mail"))["messages"]
    assert (await c.call(op="ACK", id=second["id"])) == {"ok": True}  # acked: its id is kept
    configured = await c.call(op="CONFIG", queue="jobs", **JOBS_SETTINGS)
    assert configured["ok"], configured
    assert (await c.call(op="PAUSE", queue="held"))["ok"]
    assert (await c.call(op="PUT", queue="held", body="waits"))["ok"]
    await c.call(op="CONFIG", queue="old", max_attempts=9)
    await c.call(op="PUT", queue="old", body="gone", dedup="x")
    await c.call(op="PAUSE", queue="old")
    assert (await c.call(op="DELETE", queue="old")) == {"ok": True, "deleted": 1}
    removed, *rest = (await c.call(op="PUT", queue="rm", messages=[{"body": i} for i in range(3)]))[
        "ids"
    ]
    assert (await c.call(op="REMOVE", queue="rm", ids=[removed]))["removed"] == 1
    return {"kept": kept, "acked": acked, "removed": removed, "rest": rest}


async def check(c: LineClient, seen: dict[str, Any]) -> None:
    """What ``fill`` did, after a restart."""
    info = (await c.call(op="INFO", id=seen["kept"]))["message"]
    assert (info["state"], info["attempts"], info["headers"]) == ("ready", 1, TRACE)
    again = await c.call(op="PUT", queue="mail", body=1, dedup="o1")
    assert again == {"ok": True, "id": seen["kept"], "duplicate": True}
    acked_before = await c.call(op="PUT", queue="mail", body=2, dedup="o2")
    assert acked_before == {"ok": True, "id": seen["acked"], "duplicate": True}
    settings = (await c.call(op="CONFIG", queue="jobs"))["settings"]
    assert settings == {**JOBS_SETTINGS, "max_attempts": 5}
    stats = (await c.call(op="STATS"))["queues"]
    assert stats["held"]["paused"] is True and stats["held"]["ready"] == 1
    assert (await c.call(op="GET", queue="held")) == {"ok": True, "messages": []}
    assert "old" not in stats
    fresh = await c.call(op="PUT", queue="old", body="new", dedup="x")
    assert "duplicate" not in fresh  # its dedup ids went with it
    assert (await c.call(op="CONFIG", queue="old"))["settings"]["max_attempts"] == 5
    assert (await c.call(op="INFO", id=seen["removed"]))["error"] == "not_found"
    assert stats["rm"]["ready"] == 2


async def test_a_restart_keeps_queue_state_and_forgets_what_was_deleted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    broker = await BrokerProcess.start(data)
    try:
        async with await LineClient.connect(broker.port) as c:
            seen = await fill(c)
    finally:
        assert await broker.stop() == 0
    broker = await BrokerProcess.start(data)
    try:
        async with await LineClient.connect(broker.port) as c:
            await check(c, seen)
    finally:
        assert await broker.stop() == 0


async def test_a_put_retried_after_kill_9_is_still_a_duplicate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    broker = await BrokerProcess.start(data, "--fsync", "always")
    try:
        async with await LineClient.connect(broker.port) as c:
            ids = {}
            for n in range(20):
                reply = await c.call(op="PUT", queue="orders", body=n, dedup=f"req-{n}")
                ids[f"req-{n}"] = reply["id"]
            got = (await c.call(op="GET", queue="orders", max=10))["messages"]
            acked = await c.call(op="ACK", ids=[m["id"] for m in got])
            assert acked["acked"] == 10
    finally:
        await broker.kill()  # no clean stop: only what --fsync always wrote
    broker = await BrokerProcess.start(data, "--fsync", "always")
    try:
        async with await LineClient.connect(broker.port) as c:
            for dedup, first in ids.items():  # the producer retries every PUT
                reply = await c.call(op="PUT", queue="orders", body="retry", dedup=dedup)
                assert reply == {"ok": True, "id": first, "duplicate": True}, dedup
            stats = (await c.call(op="STATS", queue="orders"))["queues"]["orders"]
            assert stats["ready"] == 10 and stats["put"] == 0
    finally:
        assert await broker.stop() == 0


async def test_a_compaction_writes_dedup_ids_settings_and_paused_flags(tmp_path: Path) -> None:
    config = Config(host="127.0.0.1", port=0, data_dir=str(tmp_path), fsync="always")
    server = Server(config, DurableBackend(config))
    await server.start()
    try:
        async with await LineClient.connect(server.port) as c:
            seen = await fill(c)
            backend = server.backend
            assert isinstance(backend, DurableBackend)
            await backend.compact()
            assert (await c.call(op="STATS"))["server"]["durability"]["compactions"] == 1
    finally:
        await server.close()
    files = sorted(name for name in os.listdir(tmp_path) if name != "LOCK")
    assert files == ["log-00000002.wql", "snap-00000002.wqs"]  # the old segment is gone
    server = Server(config, DurableBackend(config))
    await server.start()
    try:
        async with await LineClient.connect(server.port) as c:
            await check(c, seen)
    finally:
        await server.close()


def test_a_log_written_before_headers_and_dedup_still_replays(tmp_path: Path) -> None:
    """A ``Msg`` of the old shape (ten fields, no headers) and the old record kinds only."""
    old_msg = (1, 10, "q", b'"a"', None, 0, 5, 1000.5, 0.0, 2, 0)  # tag first, no headers
    data = rec.frame([rec.encode(old_msg), rec.encode(rec.Lease([10], [3]))])
    (tmp_path / segment_name(1)).write_bytes(data)
    state = ReplayState()
    assert scan(data, "old", state).torn is None
    (msg,) = state.live.values()
    assert (msg.seq, msg.attempts, msg.headers) == (10, 3, None)
    assert state.queues == {} and state.dedup == {}


def test_replay_applies_dedup_settings_and_drops_and_the_restore_drops_expired_ids() -> None:
    now_wall = time.time()
    records: list[rec.Record] = [
        rec.Msg(10, "q", b"1", None, 0, 5, now_wall - 100, headers={"h": "v"}),
        rec.Dedup("q", now_wall - 100, 300.0, ["fresh"], [10]),
        rec.Dedup("q", now_wall - 400, 300.0, ["stale"], [9]),
        rec.QueueConf("q", True, 60.0, None, 10, 0.5, None),
        rec.Msg(11, "gone", b"2", None, 0, 5, now_wall),
        rec.Dedup("gone", now_wall, 300.0, ["g"], [11]),
        rec.QueueConf("gone", False, None, 2),
        rec.Drop("gone", [11]),
    ]
    state = ReplayState()
    scan(rec.frame([rec.encode(r) for r in records]), "f", state)
    assert list(state.live) == [10] and list(state.queues) == ["q"] and list(state.dedup) == ["q"]
    engine = Engine(Config(), 1)
    restore_into(engine, state, now=50.0, wall_offset=now_wall - 50.0)
    assert [(q, d, s) for q, d, s, _, _ in engine.dedup_ids(50.0)] == [("q", "fresh", 10)]
    q = engine.find_queue("q")
    assert (
        q is not None
        and q.paused
        and q.settings.overrides()
        == {
            "lease_s": 60.0,
            "max_length": 10,
            "rate": 0.5,
        }
    )
    found = engine.lookup(10)
    assert isinstance(found, Message) and found.headers == {"h": "v"}
    assert engine.find_queue("gone") is None


def test_headers_and_new_records_round_trip_through_msgpack() -> None:
    for record in (
        rec.Msg(1, "q", b"1", None, 0, 5, 1.0, headers=TRACE),
        rec.Dedup("q", 1.0, 300.0, ["a", "b"], [1, 2]),
        rec.QueueConf("q", True, 1.5, 3, None, 0.25, 60.0),
        rec.Drop("q", [1, 2, 3]),
    ):
        framed = rec.frame([rec.encode(record)])
        assert rec.decode_frame(framed[rec.HEADER_SIZE :]) == [record]
    assert msgspec.msgpack.decode(rec.encode(rec.Msg(1, "q", b"1", None, 0, 5, 1.0)))[-1] is None
