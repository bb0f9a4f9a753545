"""The bench report: a table for people, JSON for scripts, and the issue's targets.

Owns: formatting results and judging each target of the performance issue
against the figures of one run (a target whose figures were not measured in
this run is left out, never guessed).
Must never: measure anything or change a figure.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from broker.bench.workloads import Result

_COLUMNS = (
    ("mode", 6),
    ("broker", 19),
    ("background", 15),
    ("msgs", 8),
    ("acked/s", 8),
    ("put/s", 8),
    ("p50 ms", 7),
    ("p99 ms", 7),
    ("p99.9 ms", 8),
    ("srv us/msg", 10),
    ("cli us/msg", 10),
    ("RSS B/msg", 9),
    ("WQ x", 5),
    ("once", 4),
)


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
        f"{r.client_cpu_us_per_msg:.1f}",
        f"{r.rss_bytes_per_msg:.0f}" if r.rss_bytes_per_msg is not None else "-",
        _ratio(r, results),
        "yes" if r.exactly_once else "NO",
    ]


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


def _find(results: list[Result], broker: str, mode: str, background: str = "") -> Result | None:
    for r in results:
        if _base(r.broker) == broker and r.mode == mode and r.background == background:
            return r
    return None


def targets(results: list[Result], durable: str | None) -> list[dict[str, Any]]:
    """Each target of the performance issue this run measured: figure, goal, reached."""
    out: list[dict[str, Any]] = []

    def add(name: str, figure: float, goal: str, reached: bool) -> None:
        out.append({"target": name, "figure": round(figure, 3), "goal": goal, "reached": reached})

    prefix = f"durable {durable} " if durable else ""
    for mode, peer, goal in (("rr", "beanstalkd", 3.0 if durable else 1.0), ("pipe", "redis", 1.0)):
        mine, theirs = _find(results, "wonderq", mode), _find(results, peer, mode)
        if mine and theirs and theirs.acked_per_s:
            ratio = mine.acked_per_s / theirs.acked_per_s
            add(f"{prefix}{mode}: WonderQ / {peer}", ratio, f">= {goal:.1f}x", ratio >= goal)
    batch = _find(results, "wonderq", "batch")
    if batch and not durable:
        add("batch: end-to-end msg/s", batch.acked_per_s, ">= 150000", batch.acked_per_s >= 150_000)
    rate = _find(results, "wonderq", "rate")
    if rate and "p99" in rate.latency_ms and not durable:
        p99 = rate.latency_ms["p99"]
        add("rate: p99 put->delivered (ms)", p99, "<= 0.5", p99 <= 0.5)
    fill = _find(results, "wonderq", "fill")
    if fill and fill.rss_bytes_per_msg is not None and not durable:
        per = fill.rss_bytes_per_msg
        add("fill: RSS bytes per queued message", per, "<= 250", per <= 250)
    for r in results:
        if _base(r.broker) == "wonderq" and r.background:
            base = _find(results, "wonderq", r.mode)
            if base and base.acked_per_s:
                ratio = r.acked_per_s / base.acked_per_s
                add(f"{r.mode} with {r.background}: / empty", ratio, ">= 0.8x", ratio >= 0.8)
    return out


def targets_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["targets:"]
    for t in rows:
        mark = "reached" if t["reached"] else "NOT reached"
        lines.append(f"  {t['target']:<45} {t['figure']:>12}  (goal {t['goal']}): {mark}")
    return "\n".join(lines)


def as_json(
    results: list[Result], meta: dict[str, Any], goals: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"meta": meta, "results": [asdict(r) for r in results], "targets": goals}
