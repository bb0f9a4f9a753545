"""HTTP receipts across nodes: a receipt one node gave is settled through another,
and a node's death (its leases reaped) leaves the leases of its HTTP receipts alone."""

from __future__ import annotations

from pathlib import Path

from tests.http.support import client_for
from tests.redis.nodes import running_nodes
from tests.redis.servers import RedisServer
from tests.support import LineClient


async def test_receipts_are_settled_on_any_node_and_outlive_the_node_that_gave_them(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with running_nodes(redis.url, tmp_path, 2, "--http-port", "0") as (doomed, other):
            bases = []
            for node in (doomed, other):
                line = await node.stdout_line()
                assert line.startswith("http on "), line
                bases.append("http://" + line.removeprefix("http on "))
            async with (
                client_for(bases[0]) as a,
                client_for(bases[1]) as b,
                await LineClient.connect(doomed.port) as tcp_a,
                await LineClient.connect(other.port) as tcp_b,
            ):
                msgs = [{"body": i} for i in range(3)]
                put = await a.post("/v1/queues/jobs/messages", {"messages": msgs})
                got = (await a.post("/v1/queues/jobs/receive", {"max": 2, "lease": 600})).json
                first, second = (m["receipt"] for m in got["messages"])
                acked = (await b.post("/v1/ack", {"receipts": [first]})).json
                assert (acked["acked"], acked["not_leased"]) == (1, [])
                held = (await tcp_a.call(op="GET", queue="jobs", lease=600))["messages"]
                assert held[0]["id"] == put.json["ids"][2]
                await tcp_b.send(op="GET", queue="jobs", wait=30, rid="w")
                assert (await tcp_b.call(op="PING", rid="p"))["rid"] == "p"
                await doomed.kill()
                woke = await tcp_b.reply(timeout=10)  # the dead node's TCP lease, reaped
                assert woke["messages"][0]["id"] == put.json["ids"][2]
                info = (await b.get(f"/v1/messages/{got['messages'][1]['id']}")).json
                assert info["message"]["state"] == "leased"  # the receipt's lease stays
                touched = (await b.post("/v1/touch", {"receipts": [second], "lease": 60})).json
                assert touched["touched"] == 1
                acked = (await b.post("/v1/ack", {"receipts": [second, first]})).json
                assert (acked["acked"], acked["not_leased"]) == (1, [first])
    finally:
        redis.stop()
