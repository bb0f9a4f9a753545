"""Measure what durability costs: PUT throughput per fsync mode, and restart time.

Runs the broker as a subprocess on loopback in three modes (in memory,
``--fsync everysec``, ``--fsync always``), one after another in this one run,
and drives each with the same load: ``--producers`` connections (default 32),
each sending ``--window`` PUTs (100-byte bodies) in one write and waiting for
their replies before the next write (a closed loop), for ``--seconds``. It
prints PUTs per second and the ratio to in-memory side by side. Then it fills a
durable broker with ``--replay-messages`` live messages (batch PUTs), stops it,
restarts it, and reports how long the restart took until ``listening`` and the
replay time the broker measured itself (STATS ``durability.replay_s``).

Run: ``.venv/bin/python bench/durability.py`` (see docs/durability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import msgspec

BODY = "x" * 98  # a 100-byte JSON body with its quotes


@dataclass
class Broker:
    proc: asyncio.subprocess.Process
    port: int
    started_s: float


async def start_broker(*args: str) -> Broker:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        "serve",
        "--port",
        "0",
        "--log-level",
        "WARNING",
        *args,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line.startswith(b"listening on "):
        raise SystemExit(f"broker did not start: {line!r}")
    return Broker(proc, int(line.rsplit(b":", 1)[1]), time.perf_counter() - t0)


async def stop_broker(broker: Broker) -> None:
    broker.proc.send_signal(signal.SIGTERM)
    await broker.proc.wait()


async def producer(port: int, window: int, until: float, counts: list[int], n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    line = msgspec.json.encode({"op": "PUT", "queue": f"bench{n % 4}", "body": BODY}) + b"\n"
    batch = line * window
    done = 0
    while time.perf_counter() < until:
        writer.write(batch)
        got = 0
        while got < window:
            chunk = await reader.read(65536)
            if not chunk:
                raise SystemExit("broker closed a connection")
            got += chunk.count(b"\n")
        done += window
    counts[n] = done
    writer.close()
    await writer.wait_closed()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def put_rate(
    args: argparse.Namespace, mode: str, data_dir: str | None
) -> tuple[float, float]:
    """PUTs per second, and the broker's CPU microseconds per PUT."""
    extra = [] if data_dir is None else ["--data-dir", data_dir, "--fsync", mode]
    broker = await start_broker(*extra)
    try:
        counts = [0] * args.producers
        cpu0 = cpu_seconds(broker.proc.pid)
        t0 = time.perf_counter()
        until = t0 + args.seconds
        await asyncio.gather(
            *(producer(broker.port, args.window, until, counts, n) for n in range(args.producers))
        )
        elapsed = time.perf_counter() - t0
        total = sum(counts)
        return total / elapsed, (cpu_seconds(broker.proc.pid) - cpu0) / total * 1e6
    finally:
        await stop_broker(broker)


async def fill(port: int, total: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    batch = msgspec.json.encode(
        {"op": "PUT", "queue": "replay", "messages": [{"body": BODY}] * 1000}
    )
    sent = 0
    while sent < total:
        writer.write((batch + b"\n") * 10)
        for _ in range(10):
            reply = await reader.readline()
            assert reply.startswith(b'{"ok":true'), reply[:200]
        sent += 10_000
    writer.close()
    await writer.wait_closed()


async def stats(port: int) -> dict[str, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'{"op":"STATS"}\n')
    reply = msgspec.json.decode(await reader.readline())
    writer.close()
    await writer.wait_closed()
    server = reply["server"]
    assert isinstance(server, dict)
    return server


async def replay_time(args: argparse.Namespace, root: str) -> None:
    data_dir = os.path.join(root, "replay")
    broker = await start_broker("--data-dir", data_dir, "--fsync", "no")
    await fill(broker.port, args.replay_messages)
    await stop_broker(broker)
    size = sum(e.stat().st_size for e in os.scandir(data_dir))
    broker = await start_broker("--data-dir", data_dir)
    server = await stats(broker.port)
    await stop_broker(broker)
    durability = server["durability"]
    assert isinstance(durability, dict)
    print(
        f"\nrestart with {server['messages']:,} live messages of 100 bytes "
        f"({size / 1e6:.0f} MB of log): replay {durability['replay_s']:.2f} s "
        f"(broker's own figure), {broker.started_s:.2f} s from exec to listening"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=32)
    parser.add_argument("--window", type=int, default=16, help="PUTs per write per connection")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replay-messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median shown)")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--modes", default="memory,everysec,always,no", help="comma-separated")
    args = parser.parse_args()
    print(
        f"{args.producers} producers x window {args.window}, 100-byte bodies, "
        f"{args.seconds:g} s per mode, {os.cpu_count()} CPUs"
    )
    modes = args.modes.split(",")
    if "memory" not in modes:
        modes.insert(0, "memory")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="wonderq-bench-") as root:
        for i in range(args.repeat):  # interleaved, so drift hits every mode alike
            for mode in modes:
                data_dir = None if mode == "memory" else os.path.join(root, f"{mode}{i}")
                rate, cpu = await put_rate(args, mode, data_dir)
                rates[mode].append(rate)
                cpus[mode].append(cpu)
        memory = statistics.median(rates["memory"])
        memory_cpu = statistics.median(cpus["memory"])
        print(f"{'mode':<16}{'PUT/s':>10} {'ratio':>6}  {'broker CPU/PUT':>14} {'ratio':>6}  runs")
        for mode in modes:
            rate, cpu = statistics.median(rates[mode]), statistics.median(cpus[mode])
            label = "in memory" if mode == "memory" else f"fsync {mode}"
            runs = " ".join(f"{r:,.0f}" for r in rates[mode])
            print(
                f"{label:<16}{rate:>10,.0f} {rate / memory:5.2f}x  {cpu:>11.1f} us "
                f"{memory_cpu / cpu:5.2f}x  ({runs})"
            )
        if not args.skip_replay:
            await replay_time(args, root)


if __name__ == "__main__":
    from broker.server.loop import run

    run(main())  # uvloop, as the broker: the load generator must not be the bottleneck
