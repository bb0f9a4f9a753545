"""Background states for the flat-cost runs: a WonderQ holding a lot before the run.

Owns: putting a broker in one of the states the flat-cost targets name (messages
queued elsewhere, leased and held, many queues, idle connections; distinct keys
are carried by the run's own messages) through plain request lines on its own
connections, and handing back what must stay open while the run goes on.
Must never: touch the run's own queue, or leave a reply unchecked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from broker.bench.procs import HOST, BenchError

BACKGROUNDS: Final = ("queued", "leased", "keys", "queues", "idle")


async def _lines(port: int, lines: Callable[[int], bytes], count: int, chunk: int = 500) -> Any:
    """Send ``count`` request lines on one connection, ``chunk`` at a time; check the replies."""
    reader, writer = await asyncio.open_connection(HOST, port, limit=64 * 1024 * 1024)
    for lo in range(0, count, chunk):
        hi = min(count, lo + chunk)
        writer.write(b"".join(lines(i) for i in range(lo, hi)))
        for _ in range(lo, hi):
            reply = await asyncio.wait_for(reader.readline(), 60)
            if not reply.startswith(b'{"ok":true'):
                raise BenchError(f"setting up the background: {reply[:200]!r}")
    return reader, writer


async def _put_thousands(port: int, queue: bytes, payload: bytes, count: int) -> Any:
    """Put ``count`` messages (rounded up to a thousand) into ``queue``, 1,000 per PUT."""
    batch = (
        b'{"op":"PUT","queue":"'
        + queue
        + b'","messages":['
        + b",".join([b'{"body":' + payload + b"}"] * 1000)
        + b"]}\n"
    )
    _, writer = await _lines(port, lambda i: batch, -(-count // 1000), chunk=20)
    return writer


async def preload(port: int, kind: str, count: int, body: int) -> list[Any]:
    """Put the broker in a background state; returns what must stay open during the run."""
    payload = b'"' + b"b" * (body - 2) + b'"'
    if kind == "queued":
        return [await _put_thousands(port, b"bench.queued", payload, count)]
    if kind == "leased":
        w1 = await _put_thousands(port, b"bench.leased", payload, count)
        get = b'{"op":"GET","queue":"bench.leased","max":1000,"lease":3600}\n'
        _, w2 = await _lines(port, lambda i: get, -(-count // 1000), chunk=20)
        return [w1, w2]  # the holder must stay connected, or its leases go back
    if kind == "queues":
        _, w = await _lines(
            port, lambda i: b'{"op":"PUT","queue":"bench.q%d","body":%s}\n' % (i, payload), count
        )
        return [w]
    if kind == "idle":
        writers: list[asyncio.StreamWriter] = []
        for lo in range(0, count, 250):
            pairs = await asyncio.gather(
                *(asyncio.open_connection(HOST, port) for _ in range(min(250, count - lo)))
            )
            writers.extend(w for _, w in pairs)
        return writers
    if kind == "keys":
        return []  # the workload itself carries the keys
    raise BenchError(f"unknown background {kind!r}; one of {', '.join(BACKGROUNDS)}")
