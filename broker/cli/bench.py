"""``wonderq bench``: measure WonderQ (and, with ``--compare``, the floor, beanstalkd, Redis).

Owns: the bench's flags, the order of runs (one fresh server per broker and
mode, started on a loopback port of its own and stopped by PID in ``finally``),
and printing the report (a table, or ``--json``). The load runs in ``--procs``
load processes on uvloop (``broker.bench.fleet``); every server runs in its own
process. With the connection flags (or ``WONDERQ_HOST``/``WONDERQ_PORT``) it
benches the WonderQ already running there instead, with its token and TLS
(``broker.bench.where``), once a PING got through.
Must never: leave a server running, or exit 0 when a message was lost,
duplicated or left unacked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import wonderq
from broker.bench import procs, stores
from broker.bench.backgrounds import BACKGROUNDS, preload
from broker.bench.fleet import Result, default_procs, run_plan
from broker.bench.procs import BenchError, Measured
from broker.bench.report import LEGEND, as_json, summarize, table, targets, targets_table
from broker.bench.where import Where
from broker.bench.workloads import MIN_BODY, MODES, Plan
from broker.cli.target import (
    EXIT_FAILED,
    EXIT_USAGE,
    UsageError,
    add_target_flags,
    explain,
    names_a_broker,
    target_from,
    tell,
)
from broker.server.loop import run as run_loop

FLAT_DEFAULTS = "queued:1000000,leased:100000,keys:10000,queues:10000,idle:5000"


def _csv(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {bad[0]!r}; choose from {', '.join(choices)}"
            )
        return items

    return parse


def _backgrounds(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        kind, _, count = item.strip().partition(":")
        if kind not in BACKGROUNDS or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"bad background {item!r}: KIND:COUNT with KIND one of {', '.join(BACKGROUNDS)}"
            )
        out.append((kind, int(count)))
    return out


def _counts(text: str) -> list[int]:
    try:
        counts = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4, got {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("node counts must be >= 1")
    return counts


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _body(text: str) -> int:
    value = int(text)
    if value < MIN_BODY:
        raise argparse.ArgumentTypeError(
            f"must be >= {MIN_BODY} (a body holds its index and its send time)"
        )
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="measure throughput, latency, CPU and memory (optionally against beanstalkd and Redis)",
        description="WonderQ alone by default; --compare runs the same workload against the "
        "floor (a bare Python server: this stack's least cost per request), beanstalkd and "
        "Redis, and --port against a WonderQ already running.",
    )
    _workload_flags(p)
    _peer_flags(p)
    _run_flags(p)
    p.set_defaults(run=run)


def _workload_flags(p: Any) -> None:
    """What one run does: its modes, sizes, connections and load."""
    p.add_argument(
        "--mode",
        type=_csv(MODES),
        default=list(MODES),
        help="modes, comma separated (default all: rr,pipe,batch,rate,fill)",
    )
    p.add_argument(
        "-n",
        "--messages",
        type=_positive,
        default=200_000,
        help="messages per run (default 200000)",
    )
    p.add_argument(
        "--body",
        type=_body,
        default=100,
        help=f"body bytes (default 100; at least {MIN_BODY})",
    )
    p.add_argument(
        "-P", "--producers", type=_positive, default=4, help="producer connections (default 4)"
    )
    p.add_argument(
        "-C", "--consumers", type=_positive, default=4, help="consumer connections (default 4)"
    )
    p.add_argument(
        "-W",
        "--window",
        type=_positive,
        default=64,
        help="requests in flight per connection in pipe mode (default 64)",
    )
    p.add_argument(
        "-K",
        "--batch",
        type=_positive,
        default=64,
        help="messages per request in batch and fill modes (default 64)",
    )
    p.add_argument(
        "--rate", type=float, default=1000.0, help="offered load of rate mode, msg/s (default 1000)"
    )
    p.add_argument(
        "--rate-seconds", type=float, default=5.0, help="length of the rate run (default 5 s)"
    )
    p.add_argument(
        "--fill-messages",
        type=_positive,
        default=1_000_000,
        help="messages queued by fill mode (default 1000000)",
    )


def _peer_flags(p: Any) -> None:
    """What runs next to WonderQ, and how (durable, with a background state)."""
    p.add_argument(
        "--compare",
        type=_csv(procs.PEERS),
        default=[],
        help="peers to run too: floor,beanstalkd,redis,http (http: WonderQ over its HTTP "
        "API; a peer not installed is skipped with a note)",
    )
    p.add_argument(
        "--http",
        action="store_true",
        help="also run WonderQ over its HTTP API (receive max K, batch ack by receipts, "
        "keep-alive): shorthand for adding http to --compare",
    )
    p.add_argument(
        "--procs",
        type=_positive,
        default=default_procs(),
        help="load processes: producers and consumers in separate ones from 2 up "
        f"(default {default_procs()})",
    )
    p.add_argument(
        "--durable",
        choices=procs.FSYNC_MODES,
        help="run every broker with its durable log at this fsync setting",
    )
    p.add_argument(
        "--background",
        type=_backgrounds,
        default=[],
        help=f"flat-cost runs: KIND:COUNT,... (KIND: {', '.join(BACKGROUNDS)}); each is compared with the empty run",
    )
    p.add_argument(
        "--flat", action="store_true", help=f"shorthand for --background {FLAT_DEFAULTS}"
    )
    p.add_argument(
        "--backend",
        choices=("memory", "redis"),
        default="memory",
        help="redis: also run WonderQ nodes over Redis (each --nodes count over one "
        f"redis-server on one queue; the most nodes over one Redis and over a loopback 3+3 "
        f"Redis Cluster on {stores.CLUSTER_QUEUES} queues), next to the in-memory WonderQ and "
        "the plain Redis reliable list; the redis column is Redis's CPU per message",
    )
    p.add_argument(
        "--nodes",
        type=_counts,
        default=list(stores.NODES_DEFAULT),
        help="node counts for --backend redis, comma separated (default 1,2,4)",
    )


def _run_flags(p: Any) -> None:
    """Where the WonderQ under test runs, trials, limits and the output."""
    add_target_flags(p, what="a WonderQ already running, instead of starting one per run")
    p.add_argument(
        "--server-pid",
        type=int,
        help="of a broker already running: its PID, for CPU and memory figures",
    )
    p.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        help="interleaved trials of every run (brokers take turns); the table shows medians "
        "and each ratio target is the median of the trials' side-by-side ratios (default 1)",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one run may take (default 600)"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the table"
    )


def _plans(args: argparse.Namespace) -> list[Plan]:
    plans = []
    for mode in args.mode:
        n = args.messages
        if mode == "rate":
            n = max(1, min(n, int(args.rate * args.rate_seconds)))
        elif mode == "fill":
            n = args.fill_messages
        plans.append(
            Plan(
                mode=mode,
                messages=n,
                body=args.body,
                producers=args.producers,
                consumers=args.consumers,
                window=args.window,
                batch=args.batch,
                rate=args.rate,
                timeout_s=args.timeout,
            )
        )
    return plans


class _External(Measured):
    """A server we did not start and whose PID we do not know: no CPU or memory figures."""

    def cpu_s(self) -> float:
        return 0.0 if self.pid <= 0 else super().cpu_s()

    def rss_bytes(self) -> int:
        return 0 if self.pid <= 0 else super().rss_bytes()


async def _one(
    broker: str,
    plan: Plan,
    args: argparse.Namespace,
    background: tuple[str, int] | None,
) -> Result:
    durable, where = args.durable, args.where
    bg_name = f"{background[0]}:{background[1]}" if background else ""
    label = broker if durable is None else f"{broker}/{durable}"
    result = Result(broker=label, mode=plan.mode, messages=plan.messages, background=bg_name)
    if background and background[0] == "keys":
        plan = Plan(**{**plan.__dict__, "keys": background[1]})
    proc: procs.BrokerProcess | None = None
    held: list[Any] = []
    try:
        if where is None:
            proc = await asyncio.to_thread(procs.start, broker, fsync=durable)
            server: Measured = proc
            where = Where(proc.port)
        else:
            server = _External(pid=args.server_pid or 0)
        if background:
            held = await preload(where, background[0], background[1], plan.body)
        await run_plan(procs.SERVERS[broker].adapter, where, plan, server, result, args.procs)
    except BenchError as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        for w in held:
            w.close()
        if proc is not None:
            await asyncio.to_thread(proc.stop)
    return result


async def _all(args: argparse.Namespace, progress: bool) -> tuple[list[Result], list[str]]:
    notes: list[str] = []
    peers = []
    wanted = [*args.compare, *(["http"] if args.http and "http" not in args.compare else [])]
    for peer in wanted:
        if procs.installed(peer) is None:
            notes.append(f"{peer}: skipped, its server is not installed")
        elif args.durable and not procs.SERVERS[peer].durable:
            notes.append(f"{peer}: skipped, it has no durable log")
        else:
            peers.append(peer)
    if args.where is not None and peers:
        notes.append(
            f"benching the WonderQ running at {args.where.address} only; --compare ignored"
        )
        peers = []
    rows = _scaled_rows(args, peers, notes)
    backgrounds = list(args.background) + (_backgrounds(FLAT_DEFAULTS) if args.flat else [])
    results: list[Result] = []
    for plan in _plans(args):
        for trial in range(1, args.repeat + 1):  # brokers take turns: drift hits each alike
            for broker in ["wonderq", *rows, *peers]:
                for bg in [None, *backgrounds] if broker == "wonderq" else [None]:
                    if progress:
                        what = f" with {bg[0]}:{bg[1]}" if bg else ""
                        of = f", trial {trial}/{args.repeat}" if args.repeat > 1 else ""
                        name = broker.label if isinstance(broker, stores.Scaled) else broker
                        print(
                            f"... {plan.mode} {name}{what} ({plan.messages} messages{of})",
                            file=sys.stderr,
                            flush=True,
                        )
                    if isinstance(broker, stores.Scaled):
                        result = await stores.run(broker, plan, args.procs)
                    else:
                        result = await _one(broker, plan, args, bg)
                    result.trial = trial
                    results.append(result)
    return results, notes


def _scaled_rows(args: argparse.Namespace, peers: list[str], notes: list[str]) -> list[Any]:
    """The WonderQ-over-Redis rows of ``--backend redis`` (and the plain Redis list next to
    them, added to ``peers``)."""
    if args.backend != "redis":
        return []
    if args.where is not None or args.durable:
        notes.append("--backend redis: skipped (it starts its own nodes, without --durable)")
        return []
    if procs.installed("redis") is None:
        notes.append("--backend redis: skipped, redis-server is not installed")
        return []
    if "redis" not in peers:
        peers.append("redis")
    return list(stores.plan_rows(args.nodes))


def _machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally``: servers are stopped


def _running_broker(args: argparse.Namespace) -> Where | None:
    """The broker the flags or variables name (None: the bench starts its own), once a
    PING got through to it (WonderQError: it did not)."""
    if not names_a_broker(args):
        return None
    target = target_from(args)
    try:
        with target.client(timeout_s=10.0) as client:
            client.ping()
    except wonderq.WonderQError as exc:
        raise wonderq.WonderQError(explain(target, exc)) from None
    return Where(
        target.port,
        target.host,
        token=target.token,
        tls=target.tls is not None,
        tls_ca=target.tls_ca,
    )


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args.where = _running_broker(args)
    except UsageError as exc:
        tell(args, str(exc))
        return EXIT_USAGE
    except wonderq.WonderQError as exc:
        tell(args, exc.message)
        return EXIT_FAILED
    if args.durable and args.where is None and not procs.wonderq_supports_durability():
        print(
            "wonderq bench: --durable needs `wonderq serve --data-dir DIR --fsync MODE`, "
            "which this WonderQ does not have yet",
            file=sys.stderr,
        )
        return 2
    results, notes = run_loop(_all(args, progress=not args.json))
    goals = targets(results, args.durable)
    meta = {
        "machine": _machine(),
        "command": "wonderq bench " + " ".join(sys.argv[2:])
        if len(sys.argv) > 1
        else "wonderq bench",
        "producers": args.producers,
        "consumers": args.consumers,
        "body": args.body,
        "window": args.window,
        "batch": args.batch,
        "procs": args.procs,
        "durable": args.durable,
        "repeat": args.repeat,
        "notes": notes,
    }
    if args.json:
        print(json.dumps(as_json(results, meta, goals), indent=2))
    else:
        m = meta["machine"]
        print(f"machine: {m['cpus']} CPUs, {m['cpu_model']}, Python {m['python']}")
        print(
            f"P={args.producers} C={args.consumers} body={args.body} B W={args.window} K={args.batch}"
            f" load processes={args.procs}" + (f" durable={args.durable}" if args.durable else "")
        )
        for note in notes:
            print(f"note: {note}")
        if args.repeat > 1:
            print(
                f"medians of {args.repeat} interleaved trials (--json has every trial); "
                "WQ x is the ratio of the medians"
            )
        print(table(summarize(results)))
        print(textwrap.fill(LEGEND, width=100))
        text = targets_table(goals)
        if text:
            print(text)
    return 0 if results and all(r.exactly_once for r in results) else 1
