"""/metrics on the HTTP API: figures agreeing with STATS, a bounded set of series, the
token, and ``--metrics-port``'s app that serves nothing else."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from broker.http import endpoints, metrics
from broker.http.metrics import BrokerCollector
from broker.http.openapi import document
from broker.http.routes import METRICS_ROUTES
from tests.http.support import Client, client_for, running_broker
from tests.support import BrokerProcess, LineClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(api: Client) -> Samples:
    got = await api.get("/metrics")
    assert got.status == 200
    assert got.headers["Content-Type"].startswith("text/plain")
    return samples(got.body.decode())


async def test_metrics_agree_with_stats() -> None:
    async with running_broker() as broker, client_for(broker.base) as api:
        broker.server.batch_latency = None  # not measured unless --metrics-port
        async with await LineClient.connect(broker.tcp_port) as c:
            await c.call(op="PUT", queue="jobs", messages=[{"body": i} for i in range(5)])
            await c.call(op="PUT", queue="jobs", body="later", delay=60)
            got = await c.call(op="GET", queue="jobs", max=2, lease=30)
            await c.call(op="ACK", id=got["messages"][0]["id"])
            await c.call(op="PUT", queue="poison", body="x", max_attempts=1)
            (bad,) = (await c.call(op="GET", queue="poison"))["messages"]
            await c.call(op="NACK", id=bad["id"])
            values = await scrape(api)
            stats = await c.call(op="STATS")
        for name, q in stats["queues"].items():
            for state in ("ready", "delayed", "leased", "dead"):
                key = ("wonderq_queue_messages", (("queue", name), ("state", state)))
                assert values[key] == q[state], (name, state)
            for event in ("put", "acked", "nacked", "expired", "dead_lettered"):
                key = ("wonderq_queue_events_total", (("event", event), ("queue", name)))
                assert values[key] == q[event], (name, event)
        assert values[("wonderq_queue_messages", (("queue", "jobs"), ("state", "ready")))] == 3
        assert values[("wonderq_state_messages", (("state", "ready"),))] == 4  # jobs + .dead
        assert values[("wonderq_events_total", (("event", "put"),))] == 7
        assert values[("wonderq_metrics_queues_omitted", ())] == 0
        server = stats["server"]
        assert values[("wonderq_leases", ())] == server["leased"] == 1
        assert values[("wonderq_messages", ())] == server["messages"]
        assert values[("wonderq_resident_memory_bytes", ())] > 0
        assert ("wonderq_build", (("version", server["version"]),)) in values


async def test_only_the_deepest_queues_get_series_of_their_own() -> None:
    async with (
        running_broker(metrics_queues=2) as broker,
        client_for(broker.base) as api,
    ):
        for depth, name in enumerate(("a", "b", "c", "d", "e"), 1):
            await api.post(f"/v1/queues/{name}/messages", {"messages": [{"body": 1}] * depth})
        values = await scrape(api)
    listed = {dict(labels)["queue"] for (name, labels) in values if name == "wonderq_queue_bytes"}
    assert listed == {"e", "d"}
    assert values[("wonderq_metrics_queues_omitted", ())] == 3
    assert values[("wonderq_state_messages", (("state", "ready"),))] == 15
    assert values[("wonderq_queues", ())] == 5


async def test_the_deepest_queues_and_the_totals_are_found_over_many_pages() -> None:
    """A scrape reads STATS a page (1000 queues) at a time: the deepest of every page
    compete, ties go by name, and the totals count every queue once."""
    deeper = {"q0007": 3, "q1500": 5, "q2400": 4, "q2499": 3}  # in pages 1, 2 and 3
    async with (
        running_broker(metrics_queues=3) as broker,
        client_for(broker.base) as api,
        await LineClient.connect(broker.tcp_port) as c,
    ):
        names = [f"q{i:04}" for i in range(2500)]
        lines = [
            msgspec.json.encode(
                {"op": "PUT", "queue": n, "messages": [{"body": 1}] * deeper.get(n, 1)}
            )
            for n in names
        ]
        await c.send_raw(b"\n".join(lines) + b"\n")
        for _ in names:
            assert (await c.reply())["ok"] is True
        values = await scrape(api)
    listed = {dict(labels)["queue"] for (name, labels) in values if name == "wonderq_queue_bytes"}
    assert listed == {"q1500", "q2400", "q0007"}  # q2499 ties q0007 and comes after it
    assert values[("wonderq_metrics_queues_omitted", ())] == 2497
    assert values[("wonderq_state_messages", (("state", "ready"),))] == 2500 + 11
    assert values[("wonderq_queues", ())] == 2500


async def test_a_scrape_lets_the_loop_run_between_two_pages_of_stats() -> None:
    async with running_broker() as broker, await LineClient.connect(broker.tcp_port) as c:
        lines = [b'{"op":"PUT","queue":"q%d","body":1}' % i for i in range(2500)]
        await c.send_raw(b"\n".join(lines) + b"\n")
        for _ in lines:
            assert (await c.reply())["ok"] is True
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            for _ in range(1_000_000):  # (bounded; cancelled long before)
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        seen = [turns async for _ in endpoints.stats_pages(broker.api)]
        counter.cancel()
    assert len(seen) == 3 and seen[0] < seen[1] < seen[2], seen  # 1000 queues a page


async def test_metrics_need_the_token() -> None:
    async with (
        running_broker(token="t" * 16) as broker,
        client_for(broker.base, token="t" * 16) as api,
    ):
        assert (await api.get("/metrics")).status == 200
        assert (await api.get("/metrics", headers={"Authorization": "Bearer x"})).status == 401


async def test_the_metrics_port_serves_metrics_and_health_alone() -> None:
    doc = document(METRICS_ROUTES, token=False, tls=False)
    async with running_broker() as broker, client_for(broker.base) as api:
        host, port = await broker.api.listen("127.0.0.1", 0, METRICS_ROUTES)
        async with client_for(f"http://{host}:{port}", document=doc) as alone:
            for path, status in (("/healthz", 200), ("/metrics", 200), ("/v1/stats", 404)):
                assert (await alone.get(path)).status == status, path
        assert (await api.get("/v1/stats")).status == 200
        assert {r.path for r in METRICS_ROUTES} == {"/healthz", "/metrics"}


def _takes(host: str, port: int) -> bool:
    """True if a socket could bind ``host:port`` (not if a listener holds it for that
    address, or for every address)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return False
        return True


async def _status(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    status = await reader.readline()
    writer.close()
    return status


async def test_the_metrics_port_is_on_loopback_even_when_the_broker_is_not(
    tmp_path: Path,
) -> None:
    """Row 20 of issue 18: ``--metrics-port`` listens on 127.0.0.1 unless ``--metrics-host``
    says otherwise, whatever ``--host`` is, and needs the token like every other path."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        metrics_port = spare.getsockname()[1]
    flags = ("--host", "0.0.0.0", "--no-http", "--metrics-port", str(metrics_port))
    env = {"WONDERQ_TOKEN": "metrics-token-0123456789"}
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *flags, env=env) as proc:
        assert not _takes("127.0.0.2", proc.port)  # on every address: the probe can tell
        assert _takes("127.0.0.2", metrics_port)  # on 127.0.0.1 alone
        assert b" 401 " in await _status(metrics_port, "/metrics")
        assert b" 200 " in await _status(metrics_port, "/healthz")


async def test_a_failed_scrape_is_a_500_and_the_broker_keeps_serving(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> tuple[bytes, str]:
        raise RuntimeError("no figures today")

    monkeypatch.setattr("broker.http.endpoints.exposition", broken)
    # a bug's 500 is aiohttp's own plain-text page, the one response the document leaves out
    async with api.session.get(api.base + "/metrics") as resp:
        assert resp.status == 500
    assert (await api.get("/v1/stats")).status == 200


def test_nested_server_sections_become_their_own_metrics() -> None:
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
    assert metrics.QUEUE_STATES == ("ready", "delayed", "leased", "dead")
