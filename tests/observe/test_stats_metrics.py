"""STATS' per-connection view and RSS, and /metrics scraped over HTTP agreeing with STATS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.config import Config
from broker.server import Server
from broker.server.metrics import MetricsEndpoint
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


async def get(port: int, path: str, method: str = "GET") -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


@asynccontextmanager
async def broker_with_metrics() -> AsyncIterator[tuple[Server, MetricsEndpoint]]:
    server = Server(Config(host="127.0.0.1", port=0), measure_latency=True)
    await server.start()
    endpoint = MetricsEndpoint(server, "127.0.0.1", 0)
    await endpoint.start()
    try:
        yield server, endpoint
    finally:
        await endpoint.close()
        await server.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_scraped_over_http_match_stats() -> None:
    async with (
        broker_with_metrics() as (server, endpoint),
        await LineClient.connect(server.port) as c,
    ):
        await c.call(op="PUT", queue="jobs", messages=[{"body": i} for i in range(5)])
        await c.call(op="PUT", queue="jobs", body="later", delay=60)
        got = await c.call(op="GET", queue="jobs", max=2, lease=30)
        await c.call(op="ACK", id=got["messages"][0]["id"])
        await c.call(op="PUT", queue="poison", body="x", max_attempts=1)
        (bad,) = (await c.call(op="GET", queue="poison"))["messages"]
        await c.call(op="NACK", id=bad["id"])
        await c.send(op="GET", queue="mail", wait=10, rid="w")
        await c.call(op="PUT", queue="mail", body="hi", rid="p")  # serves the waiting GET
        await c.reply()

        status, text = await get(endpoint.port, "/metrics")
        stats = await c.call(op="STATS")
        assert status == "HTTP/1.1 200 OK"
        values = samples(text)

        for name, q in stats["queues"].items():
            for state in ("ready", "delayed", "leased", "dead"):
                key = ("wonderq_queue_messages", (("queue", name), ("state", state)))
                assert values[key] == q[state], (name, state)
            for event in ("put", "acked", "nacked", "expired", "dead_lettered"):
                key = ("wonderq_queue_events_total", (("event", event), ("queue", name)))
                assert values[key] == q[event], (name, event)
            assert values[("wonderq_queue_waiting_consumers", (("queue", name),))] == 0
        assert values[("wonderq_queue_messages", (("queue", "jobs"), ("state", "ready")))] == 3
        assert values[("wonderq_queue_messages", (("queue", "poison"), ("state", "dead")))] == 1
        server_stats = stats["server"]
        assert values[("wonderq_connections", ())] == server_stats["connections"] == 1
        assert values[("wonderq_leases", ())] == server_stats["leased"] == 2
        assert values[("wonderq_messages", ())] == server_stats["messages"]
        assert values[("wonderq_bytes", ())] == server_stats["bytes"]
        assert values[("wonderq_resident_memory_bytes", ())] > 0
        assert values[("wonderq_get_wait_seconds_count", ())] == 1
        assert values[("wonderq_request_batch_seconds_count", ())] >= 8
        assert values[("wonderq_request_batch_seconds_bucket", (("le", "+Inf"),))] >= 8
        assert ("wonderq_build", (("version", server_stats["version"]),)) in values


async def test_metrics_endpoint_answers_only_metrics() -> None:
    async with broker_with_metrics() as (_server, endpoint):
        assert (await get(endpoint.port, "/nope"))[0].startswith("HTTP/1.1 404")
        assert (await get(endpoint.port, "/metrics", "POST"))[0].startswith("HTTP/1.1 405")
        status, body = await get(endpoint.port, "/")
        assert status == "HTTP/1.1 200 OK" and "/metrics" in body
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        writer.write(b"garbage without an end")
        writer.write_eof()
        async with asyncio.timeout(10):
            assert (await reader.read()).startswith(b"HTTP/1.1 400")
        writer.close()


async def test_latency_is_not_measured_without_metrics(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PING")
    assert server.batch_latency is None


def test_nested_server_sections_become_their_own_metrics() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from broker.server.metrics import BrokerCollector

    stats = {
        "server": {
            "version": "9",
            "uptime": 1.0,
            "durability": {"fsync": "always", "log_bytes": 4096, "compacting": False},
            "log_like": 7,
        },
        "queues": {},
    }
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(stats, {}))
    values = samples(generate_latest(registry).decode())
    assert values[("wonderq_durability_log_bytes", ())] == 4096
    assert values[("wonderq_durability_compacting", ())] == 0
    assert values[("wonderq_durability_info", (("fsync", "always"),))] == 1
    assert values[("wonderq_server_log_like", ())] == 7
    assert values[("wonderq_uptime_seconds", ())] == 1


async def test_a_failed_scrape_is_a_500_and_the_broker_keeps_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from broker.server import metrics

    async def broken(backend: object) -> dict[str, object]:
        raise RuntimeError("no figures today")

    async with broker_with_metrics() as (server, endpoint):
        monkeypatch.setattr(metrics, "read_stats", broken)
        status, _ = await get(endpoint.port, "/metrics")
        assert status == "HTTP/1.1 500 Internal Server Error"
        async with await LineClient.connect(server.port) as c:
            assert (await c.call(op="PING"))["ok"] is True
