"""`wonderq bench` at a tiny size, as a real process: accounting and report fields, no timings."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import msgspec
import pytest

from broker.bench import procs
from broker.bench.report import summarize, targets
from broker.bench.workloads import Result
from tests.support import require_tool

RESULT_FIELDS = {
    "broker",
    "mode",
    "messages",
    "background",
    "put_per_s",
    "delivered_per_s",
    "acked_per_s",
    "latency_ms",
    "server_cpu_us_per_msg",
    "client_cpu_us_per_msg",
    "server_rss_bytes",
    "rss_bytes_per_msg",
    "exactly_once",
    "acked",
    "duplicates",
    "missing",
}


def bench(*args: str, timeout: float = 50) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "bench", "--json", "--timeout", "30", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    doc = msgspec.json.decode(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stderr


def check_exactly_once(result: dict[str, Any]) -> None:
    assert result.keys() >= RESULT_FIELDS
    n = result["messages"]
    assert result["exactly_once"], result
    assert result["acked"] == n and result["duplicates"] == 0 and result["missing"] == 0
    assert result["acked_per_s"] > 0 and result["put_per_s"] > 0
    assert {"p50", "p99", "p99.9"} <= result["latency_ms"].keys()


def test_every_mode_accounts_for_every_message() -> None:
    rc, doc, err = bench(
        "-n", "200", "--fill-messages", "300", "--rate", "1000", "--rate-seconds", "0.2"
    )
    assert rc == 0, err
    results = doc["results"]
    assert [r["mode"] for r in results] == ["rr", "pipe", "batch", "rate", "fill"]
    assert [r["messages"] for r in results] == [200, 200, 200, 200, 300]
    for result in results:
        assert result["broker"] == "wonderq"
        check_exactly_once(result)
    assert results[-1]["rss_bytes_per_msg"] is not None
    assert doc["meta"]["machine"]["cpus"] >= 1
    assert {t["target"] for t in doc["targets"]} >= {
        "batch: end-to-end msg/s",
        "rate: p99 put->delivered (ms)",
        "fill: RSS bytes per queued message",
    }


def test_background_states_run_and_are_compared_with_the_empty_broker() -> None:
    rc, doc, err = bench(
        "--mode",
        "pipe",
        "-n",
        "200",
        "-W",
        "8",
        "--background",
        "queued:3000,leased:1500,keys:50,queues:50,idle:20",
    )
    assert rc == 0, err
    results = doc["results"]
    assert [r["background"] for r in results] == [
        "",
        "queued:3000",
        "leased:1500",
        "keys:50",
        "queues:50",
        "idle:20",
    ]
    for result in results:
        check_exactly_once(result)
    flat = [t for t in doc["targets"] if "/ empty" in t["target"]]
    assert len(flat) == 5


def test_compare_runs_the_same_workload_against_each_peer() -> None:
    require_tool("beanstalkd")
    require_tool("redis-server")
    rc, doc, err = bench(
        "--mode",
        "rr,pipe,batch",
        "-n",
        "200",
        "-W",
        "8",
        "-K",
        "16",
        "--compare",
        "beanstalkd,redis",
    )
    assert rc == 0, err
    results = doc["results"]
    assert [(r["mode"], r["broker"]) for r in results] == [
        (mode, broker) for mode in ("rr", "pipe", "batch") for broker in procs.BROKERS
    ]
    for result in results:
        check_exactly_once(result)
    names = {t["target"] for t in doc["targets"]}
    assert {"rr: WonderQ / beanstalkd", "pipe: WonderQ / redis"} <= names


def test_durable_runs_or_says_why_not() -> None:
    rc, doc, err = bench("--mode", "rr", "-n", "100", "--durable", "always")
    if procs.wonderq_supports_durability():
        assert rc == 0, err
        assert doc["results"][0]["broker"] == "wonderq/always"
        check_exactly_once(doc["results"][0])
    else:
        assert rc == 2 and "--durable needs" in err


def test_bad_arguments_are_refused() -> None:
    rc, _, err = bench("--mode", "nope")
    assert rc == 2 and "unknown 'nope'" in err
    rc, _, err = bench("--background", "queued")
    assert rc == 2 and "KIND:COUNT" in err


def test_targets_use_only_what_the_run_measured() -> None:
    mine = Result(broker="wonderq", mode="rr", messages=10, acked_per_s=200.0)
    peer = Result(broker="beanstalkd", mode="rr", messages=10, acked_per_s=100.0)
    assert targets([mine, peer], None) == [
        {"target": "rr: WonderQ / beanstalkd", "figure": 2.0, "goal": ">= 1.0x", "reached": True}
    ]
    assert targets([mine], None) == []


def test_durable_targets_compare_like_with_like() -> None:
    mine = Result(broker="wonderq/always", mode="rr", messages=10, acked_per_s=300.0)
    peer = Result(broker="beanstalkd/always", mode="rr", messages=10, acked_per_s=100.0)
    pipe = Result(broker="wonderq/always", mode="pipe", messages=10, acked_per_s=50.0)
    redis = Result(broker="redis/always", mode="pipe", messages=10, acked_per_s=100.0)
    assert targets([mine, peer, pipe, redis], "always") == [
        {
            "target": "durable always rr: WonderQ / beanstalkd",
            "figure": 3.0,
            "goal": ">= 3.0x",
            "reached": True,
        },
        {
            "target": "durable always pipe: WonderQ / redis",
            "figure": 0.5,
            "goal": ">= 1.0x",
            "reached": False,
        },
    ]


def test_a_peer_that_is_not_installed_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from broker.cli import build_parser

    monkeypatch.setattr(procs, "installed", lambda name: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # bench's SIGTERM handler: not here
    args = build_parser("bench").parse_args(
        ["bench", "--mode", "rr", "-n", "50", "--compare", "redis", "--json", "--timeout", "30"]
    )
    assert args.run(args) == 0
    doc = msgspec.json.decode(capsys.readouterr().out)
    assert doc["meta"]["notes"] == ["redis: skipped, its server is not installed"]
    assert [r["broker"] for r in doc["results"]] == ["wonderq"]
    check_exactly_once(doc["results"][0])


def test_repeated_trials_take_turns_and_report_medians() -> None:
    rc, doc, err = bench("--mode", "rr", "-n", "100", "--repeat", "2", "--compare", "redis")
    assert rc == 0, err
    results = doc["results"]
    peers = ["wonderq", "redis"] if procs.installed("redis") else ["wonderq"]
    assert [(r["trial"], r["broker"]) for r in results] == [(t, b) for t in (1, 2) for b in peers]
    for result in results:
        check_exactly_once(result)
    assert doc["meta"]["repeat"] == 2


def _rr(broker: str, trial: int, acked_per_s: float, *notes: str) -> Result:
    return Result(
        broker=broker,
        mode="rr",
        messages=10,
        acked_per_s=acked_per_s,
        latency_ms={"p99": acked_per_s / 100},
        trial=trial,
        exactly_once=True,
        notes=list(notes),
    )


def test_ratio_targets_are_the_median_of_each_trials_own_ratio() -> None:
    # trial 2 is slow for both: its ratio still counts as taken side by side
    results = [
        _rr("wonderq", 1, 300.0),
        _rr("beanstalkd", 1, 100.0),
        _rr("wonderq", 2, 30.0),
        _rr("beanstalkd", 2, 60.0),
        _rr("wonderq", 3, 200.0),
        _rr("beanstalkd", 3, 100.0),
    ]
    assert targets(results, None) == [
        {
            "target": "rr: WonderQ / beanstalkd",
            "figure": 2.0,
            "goal": ">= 1.0x",
            "reached": True,
            "trials": [3.0, 0.5, 2.0],
        }
    ]


def test_summary_rows_hold_the_median_of_the_trials() -> None:
    results = [
        _rr("wonderq", 1, 300.0),
        _rr("wonderq", 2, 100.0, "slow start"),
        _rr("wonderq", 3, 200.0),
    ]
    results[1].exactly_once = False
    (row,) = summarize(results)
    assert row.trial == 0 and row.acked_per_s == 200.0
    assert row.latency_ms == {"p99": 2.0}
    assert row.messages == 30
    assert not row.exactly_once  # one bad trial makes the summary bad
    assert row.notes == ["trial 2: slow start"]
    single = [_rr("wonderq", 1, 300.0)]
    assert summarize(single) == single
