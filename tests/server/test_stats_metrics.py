"""STATS' per-connection view and RSS (/metrics is tested with the HTTP API, tests/http)."""

from __future__ import annotations

from broker.server import Server
from tests.support import LineClient


def address(client: LineClient) -> str:
    host, port = client.writer.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


async def test_stats_connections_lists_address_leases_waits_and_requests(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as worker,
        await LineClient.connect(server.port) as admin,
    ):
        await worker.call(op="PUT", queue="jobs", messages=[{"body": 1}, {"body": 2}])
        await worker.call(op="GET", queue="jobs", max=2)
        await worker.send(op="GET", queue="empty", wait=30, rid="w")
        plain = await admin.call(op="STATS")
        assert "connections" not in plain
        assert isinstance(plain["server"]["rss"], int) and plain["server"]["rss"] > 1 << 20
        reply = await admin.call(op="STATS", connections=True)
        by_address = {c["address"]: c for c in reply["connections"]}
        assert by_address[address(worker)] == {
            "address": address(worker),
            "leases": 2,
            "waiting": 1,
            "requests": 3,
        }
        assert by_address[address(admin)]["leases"] == 0
        assert by_address[address(admin)]["requests"] == 2
        assert reply["server"]["connections"] == len(reply["connections"]) == 2


async def test_latency_is_not_measured_without_metrics(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PING")
    assert server.batch_latency is None
