"""Producers and consumers that record every promise the broker makes, until it dies."""

from __future__ import annotations

import asyncio
import random

from tests.durability.broker_process import Promises
from tests.support import LineClient

QUEUE = "crash"
_LOST = (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError)


class Workload:
    """``producers`` + ``consumers`` clients; ``done`` is set after ``ops`` completed ops."""

    def __init__(self, promises: Promises, rng: random.Random, ops: int) -> None:
        self.promises = promises
        self.rng = rng
        self.ops_left = ops
        self.done = asyncio.Event()

    def _count(self) -> None:
        self.ops_left -= 1
        if self.ops_left <= 0:
            self.done.set()

    async def run(self, port: int, producers: int, consumers: int, max_ops: int) -> None:
        """Run until the broker goes away or each client did ``max_ops`` requests."""
        jobs = [self._produce(port, n, max_ops) for n in range(producers)]
        jobs += [self._consume(port, max_ops) for _ in range(consumers)]
        await asyncio.gather(*jobs)

    async def _produce(self, port: int, n: int, max_ops: int) -> None:
        p = self.promises
        try:
            async with await LineClient.connect(port) as c:
                for i in range(max_ops):
                    if self.rng.random() < 0.2:
                        batch = [{"body": [n, i, j]} for j in range(self.rng.randint(2, 20))]
                        reply = await c.call(op="PUT", queue=QUEUE, messages=batch)
                        ids = reply["ids"]
                    else:
                        reply = await c.call(op="PUT", queue=QUEUE, body={"p": n, "i": i})
                        ids = [reply["id"]]
                    for mid in ids:
                        assert mid not in p.put_ok, f"id {mid} handed out twice"
                        p.put_ok.add(mid)
                    self._count()
        except _LOST:
            return

    async def _consume(self, port: int, max_ops: int) -> None:
        p, rng = self.promises, self.rng
        try:
            async with await LineClient.connect(port) as c:
                for _ in range(max_ops):
                    reply = await c.call(op="GET", queue=QUEUE, max=rng.randint(1, 10), lease=60)
                    for msg in reply["messages"]:
                        p.delivered(msg)
                    for msg in reply["messages"]:
                        mid = msg["id"]
                        if rng.random() < 0.15:
                            await c.call(op="NACK", id=mid)
                            continue
                        p.ack_unknown.add(mid)
                        reply = await c.call(op="ACK", id=mid)
                        assert reply == {"ok": True}, reply
                        p.ack_unknown.discard(mid)
                        p.acked_ok.add(mid)
                        p.put_ok.discard(mid)
                    self._count()
        except _LOST:
            return
