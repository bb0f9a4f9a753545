"""Interleaved A/B of two WonderQ source trees: how a change moves the server's cost.

    python bench/ab.py BEFORE AFTER [--modes rr,pipe] [-n 60000] [--repeat 3]
                       [--fsync always] [-- SERVE_ARGS...]

BEFORE and AFTER are source trees (a checkout, or ``git worktree add --detach
DIR COMMIT``) run with this interpreter (``PYTHONPATH=TREE``), so both need the
dependencies of this one. Each trial starts a fresh broker from one tree, runs
``wonderq bench --mode M`` against it with this tree's load generator (the same
client for both), and stops it; trials alternate BEFORE/AFTER and AFTER/BEFORE,
so a machine that gets busier part way through weighs on both. With ``--fsync``
every broker gets a fresh ``--data-dir``. Prints per mode the medians of
delivered msg/s and of the server's CPU per message (what the bench measures
from the broker's pid) for each tree, and AFTER/BEFORE: on a shared machine
compare these ratios, never the absolute figures (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # this tree: its bench is the load generator


def start(tree: str, serve_args: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--port", "0", "--no-http",
         "--log-level", "WARNING", *serve_args],
        env={**os.environ, "PYTHONPATH": tree},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on"):
        proc.kill()
        raise SystemExit(f"the broker of {tree} did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def trial(tree: str, mode: str, n: int, serve_args: list[str]) -> tuple[float, float]:
    """One fresh broker of ``tree``, one bench run: (delivered msg/s, server CPU µs/msg)."""
    proc, port = start(tree, serve_args)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "broker", "bench", "--port", str(port),
             "--server-pid", str(proc.pid), "--mode", mode, "-n", str(n), "--json"],
            capture_output=True, text=True, cwd=HERE, timeout=1200, check=True,
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    [result] = [r for r in json.loads(out.stdout)["results"] if r["mode"] == mode]
    return result["delivered_per_s"], result["server_cpu_us_per_msg"]


def ratio(a: float, b: float) -> str:
    """a/b, or "n/a" when b is 0 (a run too short for the CPU clock's tick)."""
    return f"{a / b:.3f}" if b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--modes", default="rr,pipe")
    parser.add_argument("-n", type=int, default=60000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fsync", choices=["always", "everysec", "no"])
    parser.add_argument("serve_args", nargs="*", help="after --: more `wonderq serve` flags")
    args = parser.parse_args()
    modes = args.modes.split(",")
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    got: dict[str, dict[str, list[tuple[float, float]]]] = {t: {} for t in trees}
    for r in range(args.repeat):
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            for mode in modes:
                with tempfile.TemporaryDirectory() as data:
                    extra = ["--data-dir", data, "--fsync", args.fsync] if args.fsync else []
                    result = trial(trees[name], mode, args.n, [*extra, *args.serve_args])
                got[name].setdefault(mode, []).append(result)
    for mode in modes:
        b, a = got["before"][mode], got["after"][mode]
        rate_b, rate_a = (statistics.median(x[0] for x in t) for t in (b, a))
        cpu_b, cpu_a = (statistics.median(x[1] for x in t) for t in (b, a))
        print(
            f"{mode:6} before {rate_b:9.0f} msg/s {cpu_b:6.1f} us/msg | after {rate_a:9.0f} "
            f"msg/s {cpu_a:6.1f} us/msg | after/before msg/s {ratio(rate_a, rate_b)} "
            f"cpu {ratio(cpu_a, cpu_b)}"
        )
        print("   trials before", [f"{x[0]:.0f}/{x[1]:.1f}" for x in b],
              "after", [f"{x[0]:.0f}/{x[1]:.1f}" for x in a])  # fmt: skip


if __name__ == "__main__":
    main()
