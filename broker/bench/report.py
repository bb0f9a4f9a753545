"""The bench report: a table for people, JSON for scripts, and the issue's targets.

Owns: formatting results and judging each target of the performance issue
against the figures of one run (a target whose figures were not measured in
this run is left out, never guessed). The headline is the server's CPU per
message next to end-to-end msg/s, each broker's CPU also as a multiple of the
floor's (``broker.bench.floor``) in the same mode and trial. With ``--repeat`` the brokers run in
interleaved trials; the table shows the median of each figure over the trials,
and a ratio target is the median of the trials' own ratios (each taken side by
side, a few seconds apart), with every trial's ratio listed.
Must never: measure anything or change a figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from broker.bench.fleet import Result

_COLUMNS = (
    ("mode", 5),
    ("broker", 17),
    ("background", 14),
    ("msgs", 8),
    ("e2e/s", 8),
    ("put/s", 8),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("p99.9 ms", 8),
    ("srv us/msg", 10),
    ("redis us", 8),
    ("x floor", 7),
    ("srv %cpu", 8),
    ("gen us/msg", 10),
    ("gen %cpu", 8),
    ("RSS B/msg", 9),
    ("WQ x", 5),
    ("once", 4),
)
LEGEND = (
    "e2e/s: messages acked per second, first put to last ack; srv: the broker's CPU (utime+stime "
    "from /proc) per message and in % of one core (of all nodes together for wq+redis and "
    "wq+cluster rows: N nodes, Q queues); redis: Redis's CPU per message (INFO "
    "used_cpu_sys+used_cpu_user, every server of a cluster); x floor: srv us/msg over the floor's in the "
    "same mode; gen: the load processes' CPU per message (all together) and the busiest one's "
    "% of a core; WQ x: WonderQ's e2e/s over this row's"
)


def _peer_row(result: Result, results: list[Result], peer: str) -> Result | None:
    """The row of ``peer`` for the same mode, without a background."""
    for other in results:
        if _base(other.broker) == peer and other.mode == result.mode and not other.background:
            return other
    return None


def _ratio(result: Result, results: list[Result]) -> str:
    """WonderQ's acked/s over this peer's, for the same mode and durability."""
    if _base(result.broker) == "wonderq":
        return ""
    for other in results:
        if (
            _base(other.broker) == "wonderq"
            and other.mode == result.mode
            and other.background == result.background
            and other.acked_per_s
            and result.acked_per_s
        ):
            return f"{other.acked_per_s / result.acked_per_s:.2f}"
    return ""


def _floor_ratio(result: Result, results: list[Result]) -> str:
    floor = _peer_row(result, results, "floor")
    if floor is None or not floor.server_cpu_us_per_msg or not result.server_cpu_us_per_msg:
        return ""
    return f"{result.server_cpu_us_per_msg / floor.server_cpu_us_per_msg:.2f}"


def _row(r: Result, results: list[Result]) -> list[str]:
    lat = r.latency_ms
    return [
        r.mode,
        r.broker,
        r.background or "-",
        str(r.messages),
        f"{r.acked_per_s:.0f}",
        f"{r.put_per_s:.0f}",
        f"{lat.get('p50', 0):.3f}",
        f"{lat.get('p99', 0):.3f}",
        f"{lat.get('p99.9', 0):.3f}",
        f"{r.server_cpu_us_per_msg:.1f}",
        f"{r.store_cpu_us_per_msg:.1f}" if r.store_cpu_us_per_msg is not None else "-",
        _floor_ratio(r, results),
        f"{r.server_cpu_pct:.0f}",
        f"{r.client_cpu_us_per_msg:.1f}",
        f"{r.client_cpu_max_pct:.0f}",
        f"{r.rss_bytes_per_msg:.0f}" if r.rss_bytes_per_msg is not None else "-",
        _ratio(r, results),
        "yes" if r.exactly_once else "NO",
    ]


_MEDIAN_FIELDS = (
    "put_per_s",
    "delivered_per_s",
    "acked_per_s",
    "server_cpu_us_per_msg",
    "server_cpu_pct",
    "client_cpu_us_per_msg",
    "client_cpu_max_pct",
    "server_rss_bytes",
    "seconds",
)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def summarize(results: list[Result]) -> list[Result]:
    """One row per broker, mode and background: the median over its trials.

    A trial that failed (not every message delivered exactly once) is no measurement:
    the medians are over the others, and the row says NO with the failure's note.
    Results of a single trial are returned as they are.
    """
    if all(r.trial == 1 for r in results):
        return results
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.broker, r.mode, r.background), []).append(r)
    rows = []
    for runs in groups.values():
        measured = [r for r in runs if r.exactly_once] or runs
        row = replace(
            measured[0], trial=0, notes=[f"trial {r.trial}: {n}" for r in runs for n in r.notes]
        )
        for name in _MEDIAN_FIELDS:
            setattr(row, name, _median([getattr(r, name) for r in measured]))
        row.latency_ms = {
            q: _median([r.latency_ms[q] for r in measured if q in r.latency_ms])
            for q in measured[0].latency_ms
        }
        per_msg = [r.rss_bytes_per_msg for r in measured if r.rss_bytes_per_msg is not None]
        row.rss_bytes_per_msg = _median(per_msg) if per_msg else None
        store = [r.store_cpu_us_per_msg for r in measured if r.store_cpu_us_per_msg is not None]
        row.store_cpu_us_per_msg = _median(store) if store else None
        row.exactly_once = all(r.exactly_once for r in runs)
        for name in ("delivered_once", "duplicates", "missing", "acked"):
            setattr(row, name, sum(getattr(r, name) for r in runs))
        row.messages = sum(r.messages for r in runs)
        rows.append(row)
    return rows


def table(results: list[Result]) -> str:
    head = "  ".join(name.rjust(width) for name, width in _COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        cells = _row(r, results)
        lines.append("  ".join(c.rjust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=True)))
        lines.extend(f"    note: {n}" for n in r.notes)
    return "\n".join(lines)


def _base(broker: str) -> str:
    """The broker of a result label (``wonderq/always`` -> ``wonderq``)."""
    return broker.partition("/")[0]


def _find(
    results: list[Result], broker: str, mode: str, background: str = "", trial: int | None = None
) -> Result | None:
    """The run of ``broker`` in ``mode`` (and trial), if it completed: a failed run measured nothing."""
    for r in results:
        if (
            _base(r.broker) == broker
            and r.mode == mode
            and r.background == background
            and (trial is None or r.trial == trial)
            and r.exactly_once
        ):
            return r
    return None


def _trials(results: list[Result]) -> list[int]:
    return sorted({r.trial for r in results})


def _over_trials(
    results: list[Result], figure: Callable[[int], float | None]
) -> tuple[float, list[float]] | None:
    """The median over the trials of ``figure(trial)`` (None: not measured in it)."""
    values = [v for t in _trials(results) if (v := figure(t)) is not None]
    if not values:
        return None
    return _median(values), values


def _goal_text(goal: float, most: bool, times: bool) -> str:
    return f"{'<=' if most else '>='} " + (f"{goal:.1f}x" if times else f"{goal:g}")


Figure = Callable[[int], float | None]  # a trial's number -> its figure (None: not run)


class _Judge:
    """Targets judged over a run's trials: each figure's median against its goal."""

    def __init__(self, results: list[Result]) -> None:
        self.results = results
        self.several = len(_trials(results)) > 1
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        figure: Figure,
        goal: float,
        most: bool = False,  # the figure must be at most the goal (else at least)
        times: bool = True,  # the goal is a ratio ("1.0x")
    ) -> None:
        measured = _over_trials(self.results, figure)
        if measured is None:
            return
        median, trials = measured
        row: dict[str, Any] = {
            "target": name,
            "figure": round(median, 3),
            "goal": _goal_text(goal, most, times),
            "reached": median <= goal if most else median >= goal,
        }
        if self.several:
            row["trials"] = [round(v, 3) for v in trials]
        self.rows.append(row)

    def ratio(
        self, mine: str, theirs: str, mode: str, background: str = "", pick: str = "acked_per_s"
    ) -> Figure:
        def per_trial(t: int) -> float | None:
            a = _find(self.results, mine, mode, background, t)
            b = _find(self.results, theirs, mode, "", t)
            if a is None or b is None or not getattr(b, pick):
                return None
            return float(getattr(a, pick) / getattr(b, pick))

        return per_trial

    def mine(
        self, mode: str, pick: Callable[[Result], float | None], broker: str = "wonderq"
    ) -> Figure:
        def per_trial(t: int) -> float | None:
            r = _find(self.results, broker, mode, "", t)
            return None if r is None else pick(r)

        return per_trial


def targets(results: list[Result], durable: str | None) -> list[dict[str, Any]]:
    """Each target of the performance issue this run measured: figure, goal, reached.

    Ratios are taken within each trial (side by side), then their median is judged.
    """
    judge = _Judge(results)
    add, ratio, mine = judge.add, judge.ratio, judge.mine
    if durable:
        prefix = f"durable {durable} "
        add(f"{prefix}rr: WonderQ / beanstalkd", ratio("wonderq", "beanstalkd", "rr"), 3.0)
        add(f"{prefix}pipe: WonderQ / redis", ratio("wonderq", "redis", "pipe"), 1.0)
    else:
        for mode in ("rr", "pipe"):
            cpu = ratio("wonderq", "floor", mode, pick="server_cpu_us_per_msg")
            add(f"{mode}: server CPU / floor", cpu, 1.3, most=True)
        add("rr: WonderQ / beanstalkd", ratio("wonderq", "beanstalkd", "rr"), 1.0)
        add("pipe: WonderQ / redis", ratio("wonderq", "redis", "pipe"), 1.0)
        e2e = mine("batch", lambda r: r.acked_per_s)
        add("batch: end-to-end msg/s", e2e, 150_000, times=False)
        add("batch: WonderQ / redis", ratio("wonderq", "redis", "batch"), 1.0)
        p99 = mine("rate", lambda r: r.latency_ms.get("p99"))
        add("rate: p99 put->delivered (ms)", p99, 0.5, most=True, times=False)
        rss = mine("fill", lambda r: r.rss_bytes_per_msg)
        add("fill: RSS bytes per queued message", rss, 170, most=True, times=False)
    _redis_targets(judge, results)
    seen: set[tuple[str, str]] = set()
    for r in results:
        if _base(r.broker) == "wonderq" and r.background and (r.mode, r.background) not in seen:
            seen.add((r.mode, r.background))
            flat = ratio("wonderq", "wonderq", r.mode, r.background)
            add(f"{r.mode} with {r.background}: / empty", flat, 0.8)
    return judge.rows


def _redis_targets(judge: _Judge, results: list[Result]) -> None:
    """Issue 14's targets, when ``--backend redis`` ran its rows."""
    labels = {r.broker for r in results}
    single = sorted(b for b in labels if b.startswith("wq+redis:") and b.count(":") == 1)
    if single:
        one = min(single, key=lambda b: int(b.split(":")[1].rstrip("n")))
        e2e = judge.mine("batch", lambda r: r.acked_per_s, broker=one)
        judge.add(f"{one} batch: end-to-end msg/s", e2e, 50_000, times=False)
        cpu = judge.ratio(one, "redis", "pipe", pick="store_cpu_us_per_msg")
        judge.add(f"{one} pipe: Redis CPU / plain list's", cpu, 2.0, most=True)
    sharded = [b for b in labels if b.startswith("wq+cluster:")]
    for b in sharded:
        shard = b.replace("wq+cluster:", "wq+redis:")
        for mode in ("pipe", "batch"):
            judge.add(f"{b} {mode}: e2e / one shard's", judge.ratio(b, shard, mode), 1.0)


def targets_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["targets:"]
    for t in rows:
        mark = "reached" if t["reached"] else "NOT reached"
        line = f"  {t['target']:<45} {t['figure']:>12}  (goal {t['goal']}): {mark}"
        if "trials" in t:
            line += f"  [trials: {', '.join(f'{v:g}' for v in t['trials'])}]"
        lines.append(line)
    return "\n".join(lines)


def as_json(
    results: list[Result], meta: dict[str, Any], goals: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"meta": meta, "results": [asdict(r) for r in results], "targets": goals}
