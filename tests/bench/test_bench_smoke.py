"""`wonderq bench` at a tiny size, as a real process: accounting and report fields, no timings.

Every peer runs every mode here, each message checked off exactly once. A peer
whose server is not installed is skipped, except under ``CI=true``, where that
fails the test (CI installs redis-server and beanstalkd: a missing one is a
broken CI, not a reason to test less).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import msgspec
import pytest

from broker.bench import procs
from tests.support import require
from tests.support.tools import on_ci

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
    "server_cpu_pct",
    "client_cpu_us_per_msg",
    "client_cpu_max_pct",
    "load_procs",
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
    assert result["load_procs"] >= 1


def require_peer(peer: str) -> None:
    """Skip without ``peer``'s server; with CI=true its absence fails the test instead."""
    require(procs.installed(peer) is not None, f"{peer} is not installed")


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


def installed_peers() -> list[str]:
    """Every peer whose server is installed; with CI=true a missing one fails the test."""
    if on_ci():
        for peer in procs.PEERS:
            require_peer(peer)
    return [peer for peer in procs.PEERS if procs.installed(peer) is not None]


@pytest.mark.timeout(180)  # 25 runs in one process (hang guard)
def test_every_mode_runs_against_every_peer_and_accounts_for_every_message() -> None:
    """One bench run for every peer (the HTTP one through the --http shorthand): each
    mode's results are WonderQ's, then each peer's, in --compare order."""
    peers = installed_peers()
    compare = ",".join(peer for peer in peers if peer != "http")
    rc, doc, err = bench(
        "-n", "300", "-W", "8", "-K", "16", "--rate-seconds", "0.2", "--fill-messages", "400",
        "--compare", compare, "--http", timeout=150,
    )  # fmt: skip
    assert rc == 0, err
    results = doc["results"]
    assert [(r["mode"], r["broker"], r["messages"]) for r in results] == [
        (mode, broker, n)
        for mode, n in (("rr", 300), ("pipe", 300), ("batch", 300), ("rate", 200), ("fill", 400))
        for broker in ("wonderq", *peers)
    ]
    for result in results:
        check_exactly_once(result)
    assert all(r["rss_bytes_per_msg"] is not None for r in results if r["mode"] == "fill")
    assert doc["meta"]["machine"]["cpus"] >= 1
    # the CPU ratios to the floor need more CPU than a few clock ticks: not at this size
    per_peer = {
        "floor": [],
        "beanstalkd": ["rr: WonderQ / beanstalkd"],
        "redis": ["pipe: WonderQ / redis", "batch: WonderQ / redis"],
        "http": [],
    }
    wanted = {
        "batch: end-to-end msg/s",
        "rate: p99 put->delivered (ms)",
        "fill: RSS bytes per queued message",
        *(target for peer in peers for target in per_peer[peer]),
    }
    assert wanted <= {t["target"] for t in doc["targets"]}


@pytest.mark.parametrize("load_procs", ["1", "3"])
def test_the_load_runs_in_as_many_processes_as_asked(load_procs: str) -> None:
    # 3 processes for 2 producers and 3 consumers: one for the producers, two for the consumers
    rc, doc, err = bench(
        "--mode", "pipe,batch", "-n", "500", "-P", "2", "-C", "3", "-W", "4", "-K", "7",
        "--procs", load_procs, "--compare", "floor",
    )  # fmt: skip
    assert rc == 0, err
    assert doc["meta"]["procs"] == int(load_procs)
    for result in doc["results"]:
        check_exactly_once(result)
        assert result["load_procs"] == int(load_procs)


def test_durable_runs_or_says_why_not() -> None:
    rc, doc, err = bench("--mode", "rr", "-n", "100", "--durable", "always", "--compare", "floor")
    if procs.wonderq_supports_durability():
        assert rc == 0, err
        assert [r["broker"] for r in doc["results"]] == ["wonderq/always"]
        check_exactly_once(doc["results"][0])
        assert doc["meta"]["notes"] == ["floor: skipped, it has no durable log"]
    else:
        assert rc == 2 and "--durable needs" in err


def test_bad_arguments_are_refused() -> None:
    rc, _, err = bench("--mode", "nope")
    assert rc == 2 and "unknown 'nope'" in err
    rc, _, err = bench("--background", "queued")
    assert rc == 2 and "KIND:COUNT" in err
    rc, _, err = bench("--body", "27")
    assert rc == 2 and "must be >= 28" in err
    rc, _, err = bench("--compare", "rabbitmq")
    assert rc == 2 and "floor, beanstalkd, redis" in err


def test_a_peer_that_is_not_installed_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from broker.cli import build_parser

    real = procs.installed
    monkeypatch.setattr(procs, "installed", lambda name: None if name == "redis" else real(name))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
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


def test_a_missing_peer_skips_the_test_but_fails_it_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "installed", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_peer("redis")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_peer("redis")


def test_a_run_past_its_deadline_fails_and_stops_its_load() -> None:
    # the last --timeout wins over bench()'s own
    rc, doc, err = bench("--mode", "rr", "-n", "1000000", "--timeout", "0.5", "--compare", "floor")
    assert rc == 1, err
    results = doc["results"]
    assert [r["broker"] for r in results] == ["wonderq", "floor"]
    for result in results:
        assert not result["exactly_once"]
        assert result["notes"] == ["failed: timed out after 0.5s"]


def test_backend_redis_runs_nodes_over_one_redis_and_a_cluster_next_to_the_peers() -> None:
    require_peer("redis")
    rc, doc, err = bench(
        "--mode", "batch", "-n", "600", "-K", "16", "--backend", "redis", "--nodes", "1,2",
        timeout=120,
    )  # fmt: skip
    assert rc == 0, err
    results = doc["results"]
    assert [r["broker"] for r in results] == [
        "wonderq", "wq+redis:1n", "wq+redis:2n", "wq+redis:2n:12q", "wq+cluster:2n:12q", "redis",
    ]  # fmt: skip
    for result in results:
        check_exactly_once(result)
        if result["broker"] != "wonderq":  # Redis's own CPU, counted in every row on Redis
            assert result["store_cpu_us_per_msg"] is not None and result["store_cpu_us_per_msg"] > 0
    assert results[0]["store_cpu_us_per_msg"] is None
    wanted = {"wq+redis:1n batch: end-to-end msg/s", "wq+cluster:2n:12q batch: e2e / one shard's"}
    assert wanted <= {t["target"] for t in doc["targets"]}
