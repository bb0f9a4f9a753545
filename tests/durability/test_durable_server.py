"""The durable backend behind a real server: restarts, delays, the lock, STATS, refusals."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from broker.config import Config
from broker.durability import records as rec
from broker.durability.backend import DurableBackend
from broker.durability.files import segment_name
from broker.durability.lock import DataDirLocked
from broker.durability.replay import ReplayState, scan
from broker.durability.tail import FILL_BYTE
from broker.server import Server
from tests.durability.broker_process import BrokerProcess
from tests.support import LineClient


def names(directory: Path) -> list[str]:
    return os.listdir(directory)


@asynccontextmanager
async def durable_server(data: Path, **overrides: Any) -> AsyncIterator[Server]:
    config = Config(host="127.0.0.1", port=0, data_dir=str(data), **overrides)
    server = Server(config, DurableBackend(config))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
async def test_a_clean_restart_keeps_messages_attempts_keys_and_dead_letters(
    tmp_path: Path, fsync: str
) -> None:
    async with (
        durable_server(tmp_path, fsync=fsync, max_attempts=2) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        ids = (await c.call(op="PUT", queue="q", messages=[{"body": n} for n in range(4)]))["ids"]
        keyed = (await c.call(op="PUT", queue="k", body="k1", key="acct"))["id"]
        await c.call(op="PUT", queue="k", body="k2", key="acct")
        got = (await c.call(op="GET", queue="q", max=2))["messages"]
        assert await c.call(op="ACK", id=got[0]["id"]) == {"ok": True}
        assert await c.call(op="NACK", id=got[1]["id"]) == {"ok": True}
        assert (await c.call(op="GET", queue="k"))["messages"][0]["id"] == keyed
        again = (await c.call(op="GET", queue="q"))["messages"][0]  # got[1], attempt 2
        assert again["id"] == got[1]["id"] and again["attempts"] == 2
        assert await c.call(op="NACK", id=again["id"]) == {"ok": True, "dead": True}
    async with (
        durable_server(tmp_path, fsync=fsync, max_attempts=2) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        info = {i: (await c.call(op="INFO", id=i)) for i in ids}
        assert info[ids[0]]["error"] == "not_found"  # acked before the restart
        states = {
            i: (r["message"]["state"], r["message"]["attempts"]) for i, r in info.items() if r["ok"]
        }
        assert sorted(states.values()) == [("dead", 2), ("ready", 0), ("ready", 0)], states
        k = (await c.call(op="GET", queue="k"))["messages"]  # the lease on k1 did not survive
        assert [(m["id"], m["attempts"]) for m in k] == [(keyed, 2)]  # attempts kept
        assert (await c.call(op="REDRIVE", queue="q"))["redriven"] == 1
        fresh = (await c.call(op="PUT", queue="q", body="new"))["id"]
        assert int(fresh, 16) > max(int(i, 16) for i in ids)


async def test_a_delay_survives_a_restart_in_wall_clock_time(tmp_path: Path) -> None:
    async with durable_server(tmp_path) as srv, await LineClient.connect(srv.port) as c:
        mid = (await c.call(op="PUT", queue="q", body=1, delay=3600))["id"]
    async with durable_server(tmp_path) as srv, await LineClient.connect(srv.port) as c:
        info = (await c.call(op="INFO", id=mid))["message"]
        assert info["state"] == "delayed" and 3590 < info["delay_left"] <= 3600, info
        assert (await c.call(op="GET", queue="q"))["messages"] == []


async def test_stats_show_the_log(tmp_path: Path) -> None:
    async with (
        durable_server(tmp_path, fsync="always") as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="q", body=1)
        durability = (await c.call(op="STATS"))["server"]["durability"]
    assert durability["fsync"] == "always" and durability["compactions"] == 0
    assert durability["log_records"] == 1 and durability["log_bytes"] > 0
    assert durability["last_fsync_age"] is not None and durability["last_fsync_age"] < 5


async def test_a_waiting_get_is_answered_after_the_lease_is_on_disk(tmp_path: Path) -> None:
    async with (
        durable_server(tmp_path, fsync="always") as srv,
        await LineClient.connect(srv.port) as consumer,
        await LineClient.connect(srv.port) as producer,
    ):
        await consumer.send(op="GET", queue="q", wait=10, rid="w")
        assert (await producer.call(op="PING")) == {"ok": True}  # the GET is registered
        mid = (await producer.call(op="PUT", queue="q", body=7))["id"]
        reply = await consumer.reply()
        assert reply["rid"] == "w" and reply["messages"][0]["id"] == mid
        backend = srv.backend
        assert isinstance(backend, DurableBackend)
        assert backend.log.synced >= backend.log.appended


async def test_a_second_backend_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    async with durable_server(tmp_path):
        config = Config(port=0, data_dir=str(tmp_path))
        with pytest.raises(DataDirLocked, match="in use by another wonderq server"):
            await DurableBackend(config).start()


async def run_serve(data: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "serve", "--port", "0", "--data-dir", str(data),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(20):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_second_server_process_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = await BrokerProcess.start(data)
    try:
        code, err = await run_serve(data)
        assert code == 1 and f"data directory {data} is in use" in err, err
    finally:
        assert await first.stop() == 0


async def test_corruption_in_the_middle_stops_the_start_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with await BrokerProcess.start(data, "--fsync", "always") as broker:
        async with await LineClient.connect(broker.port) as c:
            for n in range(3):
                await c.call(op="PUT", queue="q", body=n)
        assert await broker.stop() == 0
    segment = data / segment_name(1)
    raw = bytearray(segment.read_bytes())
    raw[20] ^= 0xFF  # inside the first of three frames
    segment.write_bytes(bytes(raw))
    code, err = await run_serve(data)
    assert code == 1, err
    assert f"corrupt log record in {segment} at offset 0" in err, err
    assert segment.read_bytes() == bytes(raw)  # nothing was truncated


async def test_a_torn_tail_is_reported_and_truncated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await BrokerProcess.start(data, "--fsync", "always") as broker:
        async with await LineClient.connect(broker.port) as c:
            kept = (await c.call(op="PUT", queue="q", body="kept"))["id"]
        await broker.kill()
    segment = data / segment_name(1)
    raw = segment.read_bytes()  # the data, then the fill ahead of it (always)
    end = scan(raw, str(segment), ReplayState()).good_end
    assert raw[end:].count(FILL_BYTE) == len(raw) - end
    torn = rec.frame([rec.encode(rec.Ack(1))])[:-3]  # a write cut short by the crash
    segment.write_bytes(raw[:end] + torn + raw[end + len(torn) :])
    broker = await BrokerProcess.start(data, "--fsync", "always")
    try:
        async with await LineClient.connect(broker.port) as c:
            assert (await c.call(op="INFO", id=kept))["ok"]
    finally:
        assert await broker.stop() == 0
    log = broker.log.read_text()
    assert f"{segment}: torn tail at offset {end}" in log, log
    assert f"truncated {len(raw) - end} bytes (a crash interrupted a write)" in log, log


async def test_compaction_runs_while_producers_keep_going(tmp_path: Path) -> None:
    async with durable_server(tmp_path, fsync="always") as srv:
        backend = srv.backend
        assert isinstance(backend, DurableBackend)
        async with await LineClient.connect(srv.port) as c:
            batch = [{"body": "x" * 50} for _ in range(1000)]
            for _ in range(20):  # 20,000 live messages: ten snapshot chunks
                assert (await c.call(op="PUT", queue="q", messages=batch))["ok"]
            got = (await c.call(op="GET", queue="q", max=100))["messages"]
            acked = await c.call(op="ACK", ids=[m["id"] for m in got])
            assert acked["acked"] == 100
            compaction = backend.compact()
            puts_during = 0
            while not compaction.done():  # bounded by the compaction's own length
                assert (await c.call(op="PUT", queue="q", body=puts_during))["ok"]
                puts_during += 1
            await compaction
            stats = (await c.call(op="STATS"))["server"]["durability"]
        assert puts_during > 0 and stats["compactions"] == 1
        assert sorted(n for n in names(tmp_path) if n != "LOCK") == [
            "log-00000002.wql",
            "snap-00000002.wqs",
        ]
    async with durable_server(tmp_path) as srv, await LineClient.connect(srv.port) as c:
        queue = (await c.call(op="STATS", queue="q"))["queues"]["q"]
        assert queue["ready"] == 20_000 - 100 + puts_during
        for m in got:
            assert (await c.call(op="INFO", id=m["id"]))["error"] == "not_found"


async def test_compaction_while_consumers_lease_and_ack_never_delivered_messages(
    tmp_path: Path,
) -> None:
    async with durable_server(tmp_path, fsync="always") as srv:
        backend = srv.backend
        assert isinstance(backend, DurableBackend)
        async with await LineClient.connect(srv.port) as c:
            batch = [{"body": n} for n in range(1000)]
            for _ in range(20):  # plain messages, never delivered: held compact
                assert (await c.call(op="PUT", queue="q", messages=batch))["ok"]
            compaction = backend.compact()
            acked: list[str] = []
            leased: list[str] = []
            while not compaction.done():  # bounded by the compaction's own length
                got = (await c.call(op="GET", queue="q", max=2))["messages"]
                assert (await c.call(op="ACK", ids=[got[0]["id"]]))["acked"] == 1
                acked.append(got[0]["id"])
                leased.append(got[1]["id"])
            await compaction
        assert acked
    async with durable_server(tmp_path) as srv, await LineClient.connect(srv.port) as c:
        queue = (await c.call(op="STATS", queue="q"))["queues"]["q"]
        assert queue["ready"] == 20_000 - len(acked)
        for seq in acked:
            assert (await c.call(op="INFO", id=seq))["error"] == "not_found"
        for seq in leased:  # released by the restart, one attempt recorded
            info = (await c.call(op="INFO", id=seq))["message"]
            assert (info["state"], info["attempts"]) == ("ready", 1)


async def test_stopping_during_a_compaction_abandons_it_cleanly(tmp_path: Path) -> None:
    async with durable_server(tmp_path) as srv:
        backend = srv.backend
        assert isinstance(backend, DurableBackend)
        async with await LineClient.connect(srv.port) as c:
            batch = [{"body": n} for n in range(1000)]
            for _ in range(20):
                assert (await c.call(op="PUT", queue="q", messages=batch))["ok"]
        backend.compact()
    assert not [n for n in names(tmp_path) if n.endswith(".tmp")]
    async with durable_server(tmp_path) as srv, await LineClient.connect(srv.port) as c:
        assert (await c.call(op="STATS", queue="q"))["queues"]["q"]["ready"] == 20_000


async def test_a_held_get_reply_still_comes_before_later_replies(tmp_path: Path) -> None:
    async with (
        durable_server(tmp_path, fsync="always") as srv,
        await LineClient.connect(srv.port) as consumer,
        await LineClient.connect(srv.port) as producer,
    ):
        for n in range(20):
            queue = f"q{n}"
            await consumer.send(op="GET", queue=queue, wait=10, rid=n)
            assert await consumer.call(op="PING", rid="sync") == {"ok": True, "rid": "sync"}
            await producer.send(op="PUT", queue=queue, body=n)  # serves the GET, held for fsync
            await consumer.send(op="CANCEL", get=n, rid="c")  # may arrive while it is held
            first, second = await consumer.reply(), await consumer.reply()
            assert first["rid"] == n and first["messages"][0]["body"] == n, (first, second)
            assert second == {"ok": True, "cancelled": 0, "rid": "c"}
            assert (await producer.reply())["ok"]
        async with await LineClient.connect(srv.port) as other:
            await consumer.send(op="GET", queue="empty", wait=10, rid="e")
            assert await consumer.call(op="PING", rid="sync") == {"ok": True, "rid": "sync"}
            await other.send(op="PUT", queue="busy", body=1)  # a record waiting for its fsync
            await consumer.send(op="CANCEL", get="e", rid="c")
            assert (await consumer.reply())["rid"] == "e"  # the cancelled GET answers first
            assert await consumer.reply() == {"ok": True, "cancelled": 1, "rid": "c"}
