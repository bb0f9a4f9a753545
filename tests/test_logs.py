"""Logs: ``wonderq serve --log-format json`` writes one JSON object per line, one per event."""

from __future__ import annotations

import io
import logging
import signal
from pathlib import Path

import msgspec

from broker import compiled, logs
from tests.support import BrokerProcess, LineClient


def test_json_formatter_carries_extras_and_exceptions() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("DEBUG", "json", stream)
    try:
        log = logging.getLogger("wonderq.test")
        log.info("hello %s", "there", extra={"event": "greeting", "count": 2})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    first, second = (msgspec.json.decode(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello there" and first["level"] == "info"
    assert first["event"] == "greeting" and first["count"] == 2
    assert first["logger"] == "wonderq.test" and first["ts"].endswith("Z")
    assert second["level"] == "error" and "ValueError: boom" in second["exc"]


async def test_serve_logs_connections_expiry_dead_letters_startup_and_shutdown(
    tmp_path: Path,
) -> None:
    args = ("--log-format", "json", "--max-attempts", "1")
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *args) as broker:
        async with await LineClient.connect(broker.port) as c:
            await c.call(op="PUT", queue="jobs", body=1)
            await c.call(op="GET", queue="jobs", lease=0.05)
            await c.send(op="GET", queue="jobs.dead", wait=5, rid="dead")
            assert (await c.reply())["messages"][0]["attempts"] == 2  # expired, dead, delivered
        assert await broker.stop(signal.SIGTERM) == 0
        err = await broker.stderr()
    records = [msgspec.json.decode(line) for line in err.splitlines()]
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    events = [r.get("event") for r in records]
    for event in ("startup", "lease_expired", "dead_lettered", "signal", "shutdown", "connections"):
        assert event in events, (event, events)
    # one line says how the hot path runs: as in this process (same install, same env)
    assert [r["hot_path"] for r in records if r.get("event") == "hot_path"] == [compiled.hot_path()]
    # at info, no line per connection: their count, in a periodic line (and one at the stop)
    assert "connection_opened" not in events and "connection_closed" not in events
    churn = records[events.index("connections")]
    assert (churn["opened"], churn["closed"], churn["open"], churn["level"]) == (1, 1, 0, "info")
    startup = records[events.index("startup")]
    assert startup["config"]["max_attempts"] == 1
    expired = records[events.index("lease_expired")]
    assert expired["queue"] == "jobs" and expired["count"] == 1
    dead = records[events.index("dead_lettered")]
    assert dead["level"] == "warning" and dead["queue"] == "jobs"


async def test_a_line_per_connection_at_debug(tmp_path: Path) -> None:
    args = ("--log-format", "json", "--log-level", "debug")
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *args) as broker:
        for _ in range(2):
            async with await LineClient.connect(broker.port) as c:
                await c.call(op="PING")
        assert await broker.stop(signal.SIGTERM) == 0
        err = await broker.stderr()
    records = [msgspec.json.decode(line) for line in err.splitlines()]
    events = [r.get("event") for r in records]
    assert events.count("connection_opened") == 2 and events.count("connection_closed") == 2
    assert all(
        r["level"] == "debug" for r in records if r.get("event", "").startswith("connection_")
    )
    churn = records[events.index("connections")]
    assert (churn["opened"], churn["closed"]) == (2, 2)
