"""A steady load on several queues through several nodes, and what it was promised.

For the failure tests that need traffic while a fault happens (a Redis Cluster
master killed): one producer and one consumer per queue, each on its own
connection to a node (a connection that breaks is opened again, to the next
node), producers PUT one message at a time with a unique integer body,
consumers GET (waiting) and ACK. The ``Ledger`` records what clients were told:
PUTs answered ok (and those whose outcome is unknown: an error or a broken
connection), every delivery, ACKs answered ok, and when each ACK succeeded, so
a test can read the pause a fault caused, the messages lost (a PUT ok never
delivered) and the duplicates (a message delivered again; worse, after its ACK
got ok).
Must never: run without a deadline, or reconnect in a tight loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.support import LineClient

RECONNECT_S = 0.1  # between a broken connection and the next try
REPLY_S = 5.0  # a reply that takes longer counts as a broken connection
SLOW_S = 0.1  # a reply slower than this is remembered (an empty waiting GET's is not)


@dataclass
class Ledger:
    put_ok: dict[int, str] = field(default_factory=dict)  # body -> queue
    put_unknown: set[int] = field(default_factory=set)
    delivered: Counter[int] = field(default_factory=Counter)
    acked: set[int] = field(default_factory=set)
    ack_unknown: set[int] = field(default_factory=set)  # ACK sent, no ok (maybe applied)
    redelivered_after_ack: set[int] = field(default_factory=set)
    acks_at: dict[str, list[float]] = field(default_factory=dict)  # queue -> instants
    errors: Counter[str] = field(default_factory=Counter)
    slow: list[tuple[str, float, float]] = field(default_factory=list)  # (op, sent at, took)
    failures: list[tuple[float, str, str]] = field(default_factory=list)  # (at, queue, what)

    def failed(self, queue: str, what: str) -> None:
        self.errors[what] += 1
        if len(self.failures) < 5000:
            self.failures.append((time.monotonic(), queue, what))

    def lost(self) -> set[int]:
        return {b for b in self.put_ok if b not in self.delivered}

    def unsettled(self) -> set[int]:
        """PUTs answered ok, delivered, neither acked with ok nor with an ACK that may
        have applied: a consumer should still get them."""
        return {
            b
            for b in self.put_ok
            if b in self.delivered and b not in self.acked and b not in self.ack_unknown
        }

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.delivered.values() if n > 1)

    def pauses_s(self, since: float, until: float) -> dict[str, float]:
        """Per queue, the longest time it went without a successful ACK between ``since``
        (the fault) and ``until`` (the end of the load), counted from its last ACK before
        ``since`` (inf: none in between)."""
        out = {}
        for queue, instants in self.acks_at.items():
            before = [t for t in instants if t <= since]
            after = [t for t in instants if since < t <= until]
            last = before[-1] if before else since
            gaps = [b - a for a, b in zip([last, *after], after, strict=False)]
            out[queue] = max(gaps) if gaps else float("inf")
        return out


class Load:
    def __init__(self, ports: list[int], queues: list[str], ledger: Ledger) -> None:
        self.ports = ports
        self.queues = queues
        self.ledger = ledger
        self.putting = True
        self.stopped_at = 0.0  # when drain() stopped the producers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i, q in enumerate(self.queues):
            self.ledger.acks_at[q] = []
            self._tasks.append(loop.create_task(self._produce(i, q)))
            self._tasks.append(loop.create_task(self._consume(i, q)))

    async def drain(self, timeout_s: float, lease_s: float) -> None:
        """Stop putting; wait (bounded) until every PUT answered ok was acked (or its
        ACK's outcome is unknown), or, once the leases a failed GET may still hold ran
        out (``lease_s``), was never delivered (lost)."""
        self.putting = False
        self.stopped_at = time.monotonic()
        deadline = self.stopped_at + timeout_s
        while time.monotonic() < deadline:
            done = self.ledger.acked | self.ledger.ack_unknown
            left = [b for b in self.ledger.put_ok if b not in done]
            if not left:
                break
            expired = time.monotonic() > self.stopped_at + lease_s + 1.0
            if expired and all(b not in self.ledger.delivered for b in left):
                break
            await asyncio.sleep(0.1)  # real time: the nodes and Redis run on their own
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connect(self, n: int) -> LineClient:
        port = self.ports[n % len(self.ports)]
        return await LineClient.connect(port)

    async def _produce(self, i: int, queue: str) -> None:
        body = i * 10_000_000
        attempt = i
        while self.putting:
            try:
                async with await self._connect(attempt) as c:
                    while self.putting:
                        body += 1
                        try:
                            reply = await _ask(c, self.ledger, op="PUT", queue=queue, body=body)
                        except (OSError, TimeoutError, EOFError, ValueError):
                            self.ledger.put_unknown.add(body)
                            raise
                        if reply.get("ok"):
                            self.ledger.put_ok[body] = queue
                        else:
                            self.ledger.put_unknown.add(body)
                            self.ledger.failed(queue, "PUT " + reply.get("error", "?"))
                            await asyncio.sleep(RECONNECT_S)  # as a client backs off
            except (OSError, TimeoutError, EOFError, ValueError):
                self.ledger.failed(queue, "put connection")
            attempt += 1
            await asyncio.sleep(RECONNECT_S)

    async def _consume(self, i: int, queue: str) -> None:
        attempt = i + 1
        while True:
            try:
                async with await self._connect(attempt) as c:
                    while True:
                        await self._take(c, queue)
            except (OSError, TimeoutError, EOFError, ValueError):
                self.ledger.failed(queue, "get connection")
            attempt += 1
            await asyncio.sleep(RECONNECT_S)

    async def _take(self, c: LineClient, queue: str) -> None:
        got = await _ask(c, self.ledger, op="GET", queue=queue, max=16, wait=0.5)
        if not got.get("ok"):
            self.ledger.failed(queue, "GET " + got.get("error", "?"))
            await asyncio.sleep(RECONNECT_S)
            return
        bodies = {m["id"]: m["body"] for m in got["messages"]}
        for body in bodies.values():
            if body in self.ledger.acked:
                self.ledger.redelivered_after_ack.add(body)
            self.ledger.delivered[body] += 1
        if not bodies:
            return
        self.ledger.ack_unknown.update(bodies.values())  # until the reply says
        acked = await _ask(c, self.ledger, op="ACK", ids=list(bodies))
        if not acked.get("ok"):
            self.ledger.failed(queue, "ACK " + acked.get("error", "?"))
            return
        self.ledger.ack_unknown.difference_update(bodies.values())
        failed = set(acked["not_leased"]) | set(acked["not_found"])
        now = time.monotonic()
        for mid, body in bodies.items():
            if mid not in failed:
                self.ledger.acked.add(body)
        if len(failed) < len(bodies):
            self.ledger.acks_at[queue].append(now)


async def _ask(c: LineClient, ledger: Ledger, **request: Any) -> dict[str, Any]:
    sent_at = time.monotonic()
    await c.send(**request)
    reply = await c.reply(timeout=REPLY_S)
    took = time.monotonic() - sent_at
    if took > SLOW_S and not (request["op"] == "GET" and not reply.get("messages")):
        ledger.slow.append((request["op"], sent_at, took))
    return reply


def summary(ledger: Ledger, since: float, until: float) -> dict[str, Any]:
    return {
        "put_ok": len(ledger.put_ok),
        "put_unknown": len(ledger.put_unknown),
        "lost": len(ledger.lost()),
        "duplicates": ledger.duplicates(),
        "redelivered_after_ack": len(ledger.redelivered_after_ack),
        "ack_unknown": len(ledger.ack_unknown),
        "pause_s": sorted(round(p, 2) for p in ledger.pauses_s(since, until).values()),
        "errors": dict(ledger.errors),
    }
