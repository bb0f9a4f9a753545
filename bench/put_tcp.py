"""Server CPU per PUT over TCP, with and without dedup ids and headers.

``wonderq bench`` drives producers and consumers with plain PUTs; this sends
only PUTs, pipelined on one connection (``--window`` lines per write, every
reply read), to a broker already running, and reads the broker's CPU time
from /proc before and after: kinds ``plain`` (a 100-byte object per PUT),
``dedup`` (each with an id of its own, so each is remembered), ``headers``
(a traceparent), and ``batch`` and ``dedup-batch`` (64 messages per PUT).
The queue is purged after each run, so runs do not pile up messages.

Run it against brokers of two trees, taking turns, and compare the ratios
(the machine is shared):
``python bench/put_tcp.py --port PORT --server-pid PID --kind dedup [-n N]`` prints
one JSON line: ``{"kind", "messages", "server_cpu_us_per_msg", "msg_per_s"}``.
A broker that does not know dedup or headers stores those PUTs as plain ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable

import msgspec

BODY = {"task": "resize", "image": 42, "size": [640, 480], "owner": "acct-7", "pad": "x" * 30}
BATCH = 64
TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def _one(extra: Callable[[int], dict[str, object]]) -> Callable[[int], bytes]:
    def line(i: int) -> bytes:
        request = {"op": "PUT", "queue": "putbench", "body": BODY, **extra(i)}
        return msgspec.json.encode(request) + b"\n"

    return line


def _many(extra: Callable[[int], dict[str, object]]) -> Callable[[int], bytes]:
    def line(i: int) -> bytes:
        items = [{"body": BODY, **extra(i * BATCH + j)} for j in range(BATCH)]
        return msgspec.json.encode({"op": "PUT", "queue": "putbench", "messages": items}) + b"\n"

    return line


KINDS: dict[str, tuple[Callable[[int], bytes], int]] = {
    "plain": (_one(lambda i: {}), 1),
    "dedup": (_one(lambda i: {"dedup": f"order-{i:012d}"}), 1),
    "headers": (_one(lambda i: {"headers": TRACE}), 1),
    "batch": (_many(lambda i: {}), BATCH),
    "dedup-batch": (_many(lambda i: {"dedup": f"order-{i:012d}"}), BATCH),
}


async def run(port: int, pid: int, kind: str, n: int, window: int) -> dict[str, object]:
    make, per_line = KINDS[kind]
    lines = [make(i) for i in range(n // per_line)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    try:
        cpu0, t0 = cpu_s(pid), time.perf_counter()
        for i in range(0, len(lines), window):
            chunk = lines[i : i + window]
            writer.write(b"".join(chunk))
            for _ in chunk:
                reply = await reader.readline()
                if not reply.startswith(b'{"ok":true'):
                    raise SystemExit(f"PUT failed: {reply!r}")
        elapsed, cpu = time.perf_counter() - t0, cpu_s(pid) - cpu0
        writer.write(b'{"op":"PURGE","queue":"putbench"}\n')
        await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    messages = len(lines) * per_line
    return {
        "kind": kind,
        "messages": messages,
        "server_cpu_us_per_msg": round(cpu / messages * 1e6, 3),
        "msg_per_s": round(messages / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--kind", choices=sorted(KINDS), default="plain")
    parser.add_argument("-n", "--messages", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=64, help="lines per write")
    args = parser.parse_args()
    result = asyncio.run(run(args.port, args.server_pid, args.kind, args.messages, args.window))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
