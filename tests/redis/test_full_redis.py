"""A Redis at its ``maxmemory`` (with ``noeviction``, as the README asks): PUTs get
``memory_limit``; everything else, heartbeats included, still works, so a full
Redis can be drained and no node drops out of the cluster because of it."""

from __future__ import annotations

from pathlib import Path

import msgspec

from broker.backend.redis.backend import RedisBackend
from broker.backend.redis.target import parse
from broker.bench.resp import command
from broker.config import Config
from broker.server import Server
from tests.redis.servers import RedisServer
from tests.support import LineClient


async def test_a_full_redis_refuses_puts_and_still_drains(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, "--maxmemory-policy", "noeviction").start()
    config = Config(host="127.0.0.1", port=0)
    backend = RedisBackend(config, parse(redis.url))
    server = Server(config, backend)
    try:
        await server.start()
        async with (
            await LineClient.connect(server.port) as producer,
            await LineClient.connect(server.port) as consumer,
        ):
            put = await producer.call(
                op="PUT", queue="jobs", messages=[{"body": i} for i in range(3)]
            )
            held = (await consumer.call(op="GET", queue="jobs", lease=600))["messages"]
            assert command(redis.port, "CONFIG", "SET", "maxmemory", "1") == "OK"
            full = await producer.call(op="PUT", queue="jobs", body="more")
            assert full["error"] == "memory_limit" and "maxmemory" in full["message"], full
            # a PUT and an ACK in one write go out in one call: the ACK still applies
            ack = msgspec.json.encode({"op": "ACK", "id": held[0]["id"], "rid": "a"})
            await consumer.send_raw(
                b'{"op":"PUT","queue":"jobs","body":1,"rid":"p"}\n' + ack + b"\n"
            )
            assert (await consumer.reply())["error"] == "memory_limit"
            assert await consumer.reply() == {"ok": True, "rid": "a"}
            rest = (await consumer.call(op="GET", queue="jobs", max=10))["messages"]
            assert [m["id"] for m in rest] == put["ids"][1:]
            assert (await consumer.call(op="ACK", ids=put["ids"][1:]))["acked"] == 2
            assert (await producer.call(op="STATS", queue="jobs"))["queues"]["jobs"]["acked"] == 3
            # the node's heartbeat goes through too: it stays a member
            beat = await backend._node_call(
                ["beat", backend.node.id, backend.node.inc, backend.node.ttl_ms, "{}"]
            )
            assert beat[0] == "ok", beat
            assert command(redis.port, "CONFIG", "SET", "maxmemory", "0") == "OK"
            assert (await producer.call(op="PUT", queue="jobs", body="again"))["ok"] is True
    finally:
        await server.close()
        redis.stop()
