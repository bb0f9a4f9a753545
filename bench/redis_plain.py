"""Redis' CPU per message for the bench's pattern, measured without the bench.

`wonderq bench` drives Redis with its own raw RESP client. This script checks that
figure against Redis' own load generator: `redis-benchmark` sends the same three
commands per message (LPUSH of a 100-byte body, BLMOVE into a processing list,
LREM -1 from it), with the same connections and pipeline depth, one command
kind after the other, and the Redis process's CPU (utime + stime from /proc) is
read around each phase. Run:

    python bench/redis_plain.py [-n 200000] [-c 4] [-P 64] [--repeat 3]

`-P 64` is the bench's `pipe` mode (a window of 64 per connection); `-P 1` its
`rr` mode. The bodies are all alike here (redis-benchmark repeats one value),
where the bench's are unique; LREM -1 stops at the first match from the tail
either way, and the oldest entry is at the tail, so that costs the same.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

from broker.bench import procs

BODY = '"' + "0" * 26 + "x" * 72 + '"'  # 100 bytes, the bench's shape


def _phase(port: int, n: int, conns: int, pipeline: int, *command: str) -> None:
    args = ["-p", str(port), "-n", str(n), "-c", str(conns), "-P", str(pipeline), "-q"]
    subprocess.run(
        ["redis-benchmark", *args, *command],
        check=True,
        capture_output=True,
        timeout=600,
    )


def one_trial(n: int, conns: int, pipeline: int) -> dict[str, float]:
    """Redis CPU microseconds per message for each command and in all."""
    server = procs.start("redis")
    try:
        port, out = server.port, {}
        phases = {
            "LPUSH": ("LPUSH", "bench", BODY),
            "BLMOVE": ("BLMOVE", "bench", "bench:processing", "RIGHT", "LEFT", "1"),
            "LREM": ("LREM", "bench:processing", "-1", BODY),
        }
        for name, command in phases.items():
            before = server.cpu_s()
            _phase(port, n, conns, pipeline, *command)
            out[name] = (server.cpu_s() - before) / n * 1e6
        left = subprocess.run(
            ["redis-cli", "-p", str(port), "llen", "bench:processing"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if left != "0":
            raise SystemExit(f"the processing list still holds {left} entries")
        out["total"] = sum(out.values())
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="messages (default 200000)")
    parser.add_argument("-c", type=int, default=4, help="connections per phase (default 4)")
    parser.add_argument("-P", type=int, default=64, help="pipeline depth (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="trials (default 3)")
    args = parser.parse_args()
    trials = [one_trial(args.n, args.c, args.P) for _ in range(args.repeat)]
    print(f"redis-benchmark -c {args.c} -P {args.P}, {args.n} messages, {args.repeat} trials")
    print("Redis CPU us per message (median; every trial):")
    for name in trials[0]:
        values = [t[name] for t in trials]
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:7} {statistics.median(values):6.2f}  [{each}]")


if __name__ == "__main__":
    main()
