"""Issue 14's failure table, each row on loopback with real processes.

Nodes run with the production heartbeat (TTL 3 s, a beat every 0.6 s). A
consumer that waits for a redelivery does it with a waiting GET on a surviving
node, so the test measures the time the message took to come back, without
sleeping for it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tests.redis.nodes import running_nodes, start_node
from tests.redis.proxy import Proxy
from tests.redis.servers import RedisServer
from tests.support import LineClient

REAP_WITHIN_S = 5.0  # issue 14: a dead node's leases are released within 5 s


async def test_a_killed_nodes_leases_come_back_through_another_node_within_5_s(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with (
            running_nodes(redis.url, tmp_path, 2) as (doomed, survivor),
            await LineClient.connect(doomed.port) as c,
            await LineClient.connect(survivor.port) as s,
        ):
            await c.call(op="PUT", queue="jobs", messages=[{"body": i} for i in range(3)])
            held = (await c.call(op="GET", queue="jobs", max=3, lease=600))["messages"]
            assert len(held) == 3
            await s.send(op="GET", queue="jobs", max=3, wait=30, rid="w")
            assert (await s.call(op="PING", rid="p"))["rid"] == "p"
            killed_at = time.monotonic()
            await doomed.kill()
            woke = await s.reply(timeout=REAP_WITHIN_S + 1)
            took = time.monotonic() - killed_at
            assert sorted(m["body"] for m in woke["messages"]) == [0, 1, 2]
            assert all(m["attempts"] == 2 for m in woke["messages"])
            assert took < REAP_WITHIN_S, took
            stats = (await s.call(op="STATS", queue="jobs"))["queues"]["jobs"]
            assert stats["released_on_disconnect"] == 3
    finally:
        redis.stop()


async def test_a_frozen_node_is_reaped_and_its_late_acks_get_not_leased(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with running_nodes(redis.url, tmp_path, 2) as (frozen, live):
            c = await LineClient.connect(frozen.port)
            s = await LineClient.connect(live.port)
            try:
                [msg_id] = (await c.call(op="PUT", queue="jobs", messages=[{"body": 1}]))["ids"]
                assert (await c.call(op="GET", queue="jobs", lease=600))["messages"][0][
                    "id"
                ] == msg_id
                await s.send(op="GET", queue="jobs", wait=30, rid="w")
                assert (await s.call(op="PING", rid="p"))["rid"] == "p"
                frozen.proc.send_signal(signal.SIGSTOP)
                try:
                    woke = await s.reply(timeout=REAP_WITHIN_S + 1)
                    assert woke["messages"][0]["id"] == msg_id  # redelivered to a live node
                    await c.send(op="ACK", id=msg_id, rid="late")  # sent while frozen
                finally:
                    frozen.proc.send_signal(signal.SIGCONT)
                # the frozen node closes its connections when it finds it was cut off,
                # or answers the late ACK: never with ok
                try:
                    late = await c.reply(timeout=5)
                    assert late["ok"] is False, late
                except ConnectionResetError:
                    pass
                assert await s.call(op="ACK", id=msg_id) == {"ok": True}  # the live holder's
            finally:
                await c.close()
                await s.close()
    finally:
        redis.stop()


async def test_a_second_node_with_a_live_nodes_id_refuses_to_start(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with running_nodes(redis.url, tmp_path, 1):
            started = time.monotonic()
            try:
                await start_node(redis.url, tmp_path, "node0")
            except AssertionError as exc:
                assert "node id 'node0' is in use by a live node" in str(exc)
            else:
                raise AssertionError("a second node0 started")
            assert time.monotonic() - started < 10
    finally:
        redis.stop()


async def test_nodes_reconnect_after_a_redis_restart_and_lose_no_acknowledged_put(
    tmp_path: Path,
) -> None:
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    redis = RedisServer(tmp_path / "redis", *aof).start()
    port = redis.port
    try:
        async with running_nodes(redis.url, tmp_path, 1) as (node,):
            async with await LineClient.connect(node.port) as c:
                put = await c.call(
                    op="PUT", queue="jobs", messages=[{"body": i} for i in range(50)]
                )
                assert put["ok"]
            redis.stop()  # SIGKILL: whatever was answered ok is in the AOF (always)
            redis = RedisServer(tmp_path / "redis", *aof, port=port).start()
            async with asyncio.timeout(15):
                while True:  # the node comes back on its own (bounded: 15 s)
                    async with await LineClient.connect(node.port) as c:
                        listed = await c.call(op="QUEUES")
                    if listed["ok"]:
                        break
                    assert listed["error"] == "unavailable", listed
                    await asyncio.sleep(0.2)  # real time: a restarting Redis
            assert listed["queues"] == ["jobs"]  # named before the PUT was answered ok
            async with await LineClient.connect(node.port) as c:
                stats = await c.call(op="STATS", queue="jobs")
            assert stats["queues"]["jobs"]["ready"] == 50
    finally:
        redis.stop()


async def test_an_unreachable_redis_gets_unavailable_in_a_second_and_the_node_recovers(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    proxy = await Proxy(redis.port).start()
    try:
        async with running_nodes(proxy.url, tmp_path, 1) as (node,):
            c = await LineClient.connect(node.port)
            assert (await c.call(op="PUT", queue="jobs", body=1))["ok"]
            proxy.stall()  # a silent partition: nothing answers
            sent_at = time.monotonic()
            reply = await c.call(op="PUT", queue="jobs", body=2)
            assert reply["error"] == "unavailable" and time.monotonic() - sent_at < 1.5
            # past half the heartbeat TTL the node closes its client connections itself
            try:
                line = await c.reader.readline()
                assert line == b"", line
            finally:
                await c.close()
            proxy.forward()
            proxy.cut()  # and a reset, then Redis is back
            proxy.forward()
            async with asyncio.timeout(15):
                while True:  # it serves again without a restart (bounded: 15 s)
                    async with await LineClient.connect(node.port) as c2:
                        reply = await c2.call(op="PUT", queue="jobs", body=3)
                    if reply["ok"]:
                        break
                    assert reply["error"] == "unavailable", reply
                    await asyncio.sleep(0.2)  # real time: a reconnecting node
    finally:
        await proxy.close()
        redis.stop()
