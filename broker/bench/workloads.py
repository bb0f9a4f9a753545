"""The bench workloads: producers and consumers driving any adapter, and the accounting.

Owns: one measured run of a mode (``rr``, ``pipe``, ``batch``, ``rate``,
``fill``) against one broker at ``127.0.0.1:port``: P producer and C consumer
connections in this process (on uvloop, callback-driven, no coroutine per
message), the exactly-once check (every message delivered once and acked
once), latency (put sent -> delivered, per message), and the background states
the flat-cost targets ask for (messages queued, leased, queues, idle
connections, distinct keys).
Every message body is ``"<10-digit index><filler>"``: a JSON string of exactly B
bytes, the same bytes for every broker, whose index the consumer checks off.
Must never: wait without a bound (every run has a deadline) or count a message
it did not see acked.
"""

from __future__ import annotations

import asyncio
import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from broker.bench.adapters import ADAPTERS, Adapter
from broker.bench.procs import HOST, BenchError, Measured

MODES: Final = ("rr", "pipe", "batch", "rate", "fill")
BACKGROUNDS: Final = ("queued", "leased", "keys", "queues", "idle")
MIN_BODY: Final = 12
QUEUE: Final = "bench"


@dataclass(frozen=True)
class Plan:
    mode: str
    messages: int = 200_000
    body: int = 100
    producers: int = 4
    consumers: int = 4
    window: int = 64
    batch: int = 64
    rate: float = 1000.0
    keys: int = 0  # >0: message i carries key "k{i % keys}" (WonderQ only)
    timeout_s: float = 600.0


@dataclass
class Result:
    broker: str
    mode: str
    messages: int
    background: str = ""
    put_per_s: float = 0.0
    delivered_per_s: float = 0.0
    acked_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    server_cpu_us_per_msg: float = 0.0
    client_cpu_us_per_msg: float = 0.0
    server_rss_bytes: int = 0
    rss_bytes_per_msg: float | None = None
    delivered_once: int = 0
    duplicates: int = 0
    missing: int = 0
    acked: int = 0
    exactly_once: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    trial: int = 1  # which of ``--repeat`` interleaved trials (0: the median of them all)


def percentiles(values: array[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)
    out = {}
    for name, q in (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)):
        out[name] = round(ordered[min(n - 1, int(q * n))] * 1000, 4)
    return out


class Run:
    """The shared state of one run: sent-at times, delivery counts, acks, errors."""

    def __init__(self, plan: Plan, loop: asyncio.AbstractEventLoop) -> None:
        n = plan.messages
        self.plan = plan
        self.loop = loop
        self.sent_at = array("d", bytes(8 * n))
        self.delivered = bytearray(n)
        self.latencies: array[float] = array("d")
        self.put_confirmed = 0
        self.delivered_total = 0
        self.acked = 0
        self.duplicates = 0
        self.errors: list[str] = []
        self.started_at = 0.0
        self.puts_done_at = 0.0
        self.delivered_at = 0.0
        self.acked_at = 0.0
        self.all_put: asyncio.Future[None] = loop.create_future()
        self.all_acked: asyncio.Future[None] = loop.create_future()
        self._filler = b"x" * (plan.body - MIN_BODY) + b'"'

    def body(self, i: int) -> bytes:
        return b'"%010d' % i + self._filler

    def fail(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)
        for fut in (self.all_put, self.all_acked):
            if not fut.done():
                fut.set_exception(BenchError(text))

    def on_put(self, n: int) -> None:
        self.put_confirmed += n
        if self.put_confirmed >= self.plan.messages:
            self.puts_done_at = time.perf_counter()
            if not self.all_put.done():
                self.all_put.set_result(None)

    def on_delivered(self, items: list[tuple[Any, bytes]], now: float) -> None:
        """Check off one get's messages (one loop per get: the client's CPU counts too)."""
        delivered, sent_at, latency = self.delivered, self.sent_at, self.latencies.append
        for _, body in items:
            i = int(body[1:11])
            if delivered[i]:
                self.duplicates += 1
            else:
                delivered[i] = 1
                latency(now - sent_at[i])
                self.delivered_total += 1
                if self.delivered_total == self.plan.messages:
                    self.delivered_at = now

    def on_acked(self, n: int) -> None:
        self.acked += n
        if self.acked >= self.plan.messages:
            self.acked_at = time.perf_counter()
            if not self.all_acked.done():
                self.all_acked.set_result(None)

    @property
    def finished(self) -> bool:
        return self.acked >= self.plan.messages or bool(self.errors)


class Producer:
    """Puts messages ``start..stop-1``: ``batch`` per request, ``window`` requests in flight."""

    def __init__(self, run: Run, start: int, stop: int, window: int, batch: int) -> None:
        self.run = run
        self.next = start
        self.stop = stop
        self.batch = batch
        self.limit = window * batch
        self.outstanding = 0
        self.conn: Adapter | None = None
        self.keys = run.plan.keys

    def begin(self) -> None:
        self._fill()

    def _fill(self) -> None:
        conn = self.conn
        assert conn is not None
        run = self.run
        body = run.body
        sent_at = run.sent_at
        while self.outstanding < self.limit and self.next < self.stop:
            lo = self.next
            hi = min(lo + self.batch, self.stop)
            now = time.perf_counter()
            for i in range(lo, hi):
                sent_at[i] = now
            if self.keys:
                conn.put(
                    [body(i) for i in range(lo, hi)], [f"k{i % self.keys}" for i in range(lo, hi)]
                )
            else:
                conn.put([body(i) for i in range(lo, hi)])
            self.outstanding += hi - lo
            self.next = hi

    def on_put(self, n: int) -> None:
        self.outstanding -= n
        self.run.on_put(n)
        self._fill()

    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None:
        self.run.fail("a producer connection got messages")

    def on_acked(self, conn: Adapter, n: int) -> None:
        self.run.fail("a producer connection got an ACK reply")

    def on_error(self, text: str) -> None:
        self.run.fail(text)


class PacedProducer(Producer):
    """Puts one message every ``interval_s`` whatever the replies (a fixed offered load)."""

    def __init__(self, run: Run, start: int, stop: int, interval_s: float, offset_s: float) -> None:
        super().__init__(run, start, stop, 1, 1)
        self.interval_s = interval_s
        self.offset_s = offset_s
        self._handle: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._sent = 0

    def begin(self) -> None:
        self._t0 = self.run.loop.time() + self.offset_s
        self._handle = self.run.loop.call_at(self._t0, self._tick)

    def _tick(self) -> None:
        conn = self.conn
        if self.next >= self.stop or self.run.errors or conn is None:
            return
        i = self.next
        self.next += 1
        self.run.sent_at[i] = time.perf_counter()
        conn.put([self.run.body(i)])
        self._sent += 1
        self._handle = self.run.loop.call_at(self._t0 + self._sent * self.interval_s, self._tick)

    def on_put(self, n: int) -> None:
        self.run.on_put(n)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


class Consumer:
    """Gets ``batch`` messages per request and acks what it got, ``window`` operations in flight.

    At most one get waits: when nothing else is in flight, the consumer sends one
    waiting get (a blocking reserve or BLMOVE for the peers). While messages flow
    it fills the rest of its window with gets that do not wait, and lets the
    window drain as they come back empty. So no request of a peer ever queues
    behind a blocked one on its connection, and an empty queue costs no polling.
    """

    def __init__(self, run: Run, window: int, batch: int) -> None:
        self.run = run
        self.window = window
        self.batch = batch
        self.gets_out = 0
        self.acks_out = 0
        self.flowing = False
        self.conn: Adapter | None = None

    def begin(self) -> None:
        self._refill()

    def _refill(self) -> None:
        conn = self.conn
        assert conn is not None
        if self.run.finished:
            return
        if self.gets_out + self.acks_out == 0:
            conn.get(self.batch, True)
            self.gets_out += 1
        if self.flowing:
            while self.gets_out + self.acks_out < self.window:
                conn.get(self.batch, False)
                self.gets_out += 1

    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None:
        self.gets_out -= 1
        if items:
            self.run.on_delivered(items, time.perf_counter())
            conn.ack([token for token, _ in items])
            self.acks_out += 1
            self.flowing = True
        else:
            self.flowing = False
        self._refill()

    def on_acked(self, conn: Adapter, n: int) -> None:
        self.acks_out -= 1
        self.run.on_acked(n)
        self._refill()

    def on_put(self, n: int) -> None:
        self.run.fail("a consumer connection got a PUT reply")

    def on_error(self, text: str) -> None:
        self.run.fail(text)


async def _connect(broker: str, port: int, sink: Any, slot: int) -> Adapter:
    loop = asyncio.get_running_loop()
    cls = ADAPTERS[broker]
    _, conn = await loop.create_connection(lambda: cls(sink, QUEUE, slot), HOST, port)
    sink.conn = conn
    return conn


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    step, extra = divmod(n, parts)
    out, lo = [], 0
    for p in range(parts):
        hi = lo + step + (1 if p < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _mode_shape(plan: Plan) -> tuple[int, int]:
    """(window, batch) of one connection in this mode."""
    if plan.mode == "rr":
        return 1, 1
    if plan.mode == "pipe":
        return plan.window, 1
    if plan.mode in ("batch", "fill"):
        return 1, plan.batch
    return 1, 1  # rate


async def run_plan(broker: str, port: int, plan: Plan, server: Measured, result: Result) -> None:
    """One measured run; fills ``result``. Raises BenchError on any failure."""
    if plan.body < MIN_BODY:
        raise BenchError(f"bodies must be at least {MIN_BODY} bytes")
    if plan.keys and broker != "wonderq":
        raise BenchError("keyed messages are a WonderQ feature; the peers have no keys")
    loop = asyncio.get_running_loop()
    run = Run(plan, loop)
    window, batch = _mode_shape(plan)
    producers: list[Producer] = []
    ranges = _split(plan.messages, plan.producers)
    for p, (lo, hi) in enumerate(ranges):
        if plan.mode == "rate":
            interval = plan.producers / plan.rate
            producers.append(PacedProducer(run, lo, hi, interval, p * interval / plan.producers))
        else:
            producers.append(Producer(run, lo, hi, window, batch))
    consumers = [Consumer(run, window, batch) for _ in range(plan.consumers)]
    conns: list[Adapter] = []
    me = Measured(pid=os.getpid())
    try:
        for slot, sink in enumerate([*producers, *consumers]):
            conns.append(await _connect(broker, port, sink, slot))
        await asyncio.sleep(0.05)  # let the server settle after the connections
        rss_empty = server.rss_bytes()
        cpu0, my_cpu0 = server.cpu_s(), me.cpu_s()
        run.started_at = time.perf_counter()
        for prod in producers:
            prod.begin()
        if plan.mode == "fill":
            await _bounded(run.all_put, plan.timeout_s, "putting")
            result.server_rss_bytes = server.rss_bytes()
            if server.pid > 0:  # else a server we know nothing of: no memory figure
                result.rss_bytes_per_msg = round(
                    (result.server_rss_bytes - rss_empty) / plan.messages, 1
                )
        for cons in consumers:
            cons.begin()
        await _bounded(run.all_acked, plan.timeout_s, "acking every message")
        cpu1, my_cpu1 = server.cpu_s(), me.cpu_s()
    finally:
        for prod in producers:
            if isinstance(prod, PacedProducer):
                prod.cancel()
        for conn in conns:
            conn.close()
    _fill_result(result, run, cpu1 - cpu0, my_cpu1 - my_cpu0, server)


async def _bounded(fut: asyncio.Future[None], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await fut
    except TimeoutError:
        raise BenchError(f"timed out after {timeout_s:g}s {what}") from None


def _fill_result(result: Result, run: Run, cpu_s: float, my_cpu_s: float, server: Measured) -> None:
    n = run.plan.messages
    t0 = run.started_at
    result.put_per_s = round(n / (run.puts_done_at - t0))
    result.delivered_per_s = round(n / (run.delivered_at - t0)) if run.delivered_at else 0.0
    result.acked_per_s = round(n / (run.acked_at - t0))
    result.seconds = round(run.acked_at - t0, 3)
    result.latency_ms = percentiles(run.latencies)
    result.server_cpu_us_per_msg = round(cpu_s / n * 1e6, 2)
    result.client_cpu_us_per_msg = round(my_cpu_s / n * 1e6, 2)
    if not result.server_rss_bytes:
        result.server_rss_bytes = server.rss_bytes()
    result.delivered_once = run.delivered_total
    result.duplicates = run.duplicates
    result.missing = n - run.delivered_total
    result.acked = run.acked
    result.exactly_once = run.duplicates == 0 and result.missing == 0 and run.acked == n
    if run.errors:
        result.notes.extend(run.errors)


# ------------------------------------------------------------- backgrounds


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


async def preload(port: int, kind: str, count: int, body: int) -> list[Any]:
    """Put the broker in a background state; returns what must stay open during the run."""
    payload = b'"' + b"b" * (body - 2) + b'"'
    if kind == "queued":
        batch = (
            b'{"op":"PUT","queue":"bench.queued","messages":['
            + b",".join([b'{"body":' + payload + b"}"] * 1000)
            + b"]}\n"
        )
        _, w = await _lines(port, lambda i: batch, -(-count // 1000), chunk=20)
        return [w]
    if kind == "leased":
        batch = (
            b'{"op":"PUT","queue":"bench.leased","messages":['
            + b",".join([b'{"body":' + payload + b"}"] * 1000)
            + b"]}\n"
        )
        _, w1 = await _lines(port, lambda i: batch, -(-count // 1000), chunk=20)
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
