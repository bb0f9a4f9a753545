"""The bench's load: one load process's producers and consumers, and what they saw.

Owns: a ``Plan`` (one mode's shape), a ``Share`` (the part of it one load process
runs: producer index ranges and consumer quotas, each on its own connection), and
driving that share against a broker through an adapter: callback-driven, no
coroutine per message, every request of one read written in one go. Producers put
messages ``lo..hi-1`` (``batch`` per request, ``window`` requests in flight);
consumers take exactly their quota with blocking gets (never more requests than
messages still owed to them, so no get ever waits for a message that will not
come, and none polls an empty queue) and ack what they got. The ``Tally`` is
what the share saw: which indices were delivered (once or twice), put->delivered
latencies, counts and instants, for the parent to merge (``fleet``).
Every message body is ``"<10-digit index><16-digit send time, us><filler>"``: a
JSON string of exactly B bytes. The send time is ``time.perf_counter_ns`` (the
system-wide monotonic clock on Linux), so a consumer in another process measures
the latency without sharing state with the producer.
Must never: count a message it did not see acked, or wait without a bound (the
parent holds the deadline and aborts a share that overruns it).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from broker.bench.adapters import Adapter

MODES: Final = ("rr", "pipe", "batch", "rate", "fill")
MIN_BODY: Final = 28  # the quotes, the index and the send time
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
    queues: int = 1  # >1: producer p puts on queue p % queues, consumer c takes from c % queues

    def queue_of(self, slot: int) -> str:
        """The queue of connection ``slot`` (producers first, then consumers)."""
        if self.queues == 1:
            return QUEUE
        i = slot if slot < self.producers else slot - self.producers
        return f"{QUEUE}{i % self.queues}"

    def node_of(self, slot: int, nodes: int) -> int:
        """Which of ``nodes`` nodes connection ``slot`` talks to: producer p to p, consumer
        c to c + 1 (modulo), so with two nodes or more a message crosses nodes."""
        i = slot if slot < self.producers else slot - self.producers + 1
        return i % nodes

    def shape(self) -> tuple[int, int]:
        """(window, batch) of one connection in this mode."""
        if self.mode == "pipe":
            return self.window, 1
        if self.mode in ("batch", "fill"):
            return 1, self.batch
        return 1, 1  # rr, rate


class Share(msgspec.Struct):
    """One load process's part of a run; slots number connections across the run."""

    producers: list[tuple[int, int, int]]  # (lo, hi, slot): put messages lo..hi-1
    consumers: list[tuple[int, int]]  # (quota, slot): take and ack exactly quota messages


class Tally(msgspec.Struct):
    """What one load process saw; instants are ``time.perf_counter`` seconds (0: never)."""

    delivered: bytes  # one byte per message of the run: 1 if delivered to this process
    duplicates: int  # deliveries of an index this process had already seen
    latencies: bytes  # array('d'): put -> delivered, seconds
    put: int
    got: int
    acked: int
    puts_done_at: float
    delivered_at: float
    acked_at: float
    cpu_s: float  # this process's CPU between the start and the end of its part
    errors: list[str]


def now_us() -> int:
    return time.perf_counter_ns() // 1000


class Load:
    """The shared state of one load process: counts, deliveries, latencies, errors."""

    def __init__(self, plan: Plan, share: Share, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.delivered = bytearray(plan.messages)
        self.latencies: array[float] = array("d")
        self.put_goal = sum(hi - lo for lo, hi, _ in share.producers)
        self.get_goal = sum(quota for quota, _ in share.consumers)
        self.put = self.got = self.acked = self.duplicates = 0
        self.puts_done_at = self.delivered_at = self.acked_at = 0.0
        self.errors: list[str] = []
        self.all_put: asyncio.Future[None] = loop.create_future()
        self.all_acked: asyncio.Future[None] = loop.create_future()
        self._check_done()
        self.body_format = b'"%010d%016d' + b"x" * (plan.body - MIN_BODY) + b'"'

    def _check_done(self) -> None:
        if self.put >= self.put_goal and not self.all_put.done():
            if self.put_goal:  # a process with no producer has no instant of its own
                self.puts_done_at = time.perf_counter()
            self.all_put.set_result(None)
        if self.acked >= self.get_goal and not self.all_acked.done():
            if self.get_goal:
                self.acked_at = time.perf_counter()
            self.all_acked.set_result(None)

    def fail(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)
        for fut in (self.all_put, self.all_acked):
            if not fut.done():
                fut.set_result(None)  # the errors say why; the parent aborts the run

    def on_put(self, n: int) -> None:
        self.put += n
        if self.put >= self.put_goal:
            self._check_done()

    def on_delivered(self, items: list[tuple[Any, bytes]]) -> None:
        """Check off one get's messages (one loop per get: the client's CPU counts too)."""
        delivered, latency, now = self.delivered, self.latencies.append, now_us()
        for _, body in items:
            i = int(body[1:11])
            if delivered[i]:
                self.duplicates += 1
            else:
                delivered[i] = 1
                latency((now - int(body[11:27])) * 1e-6)
        self.got += len(items)
        if self.got >= self.get_goal and not self.delivered_at:
            self.delivered_at = time.perf_counter()

    def on_acked(self, n: int) -> None:
        self.acked += n
        if self.acked >= self.get_goal:
            self._check_done()

    def tally(self, cpu_s: float) -> Tally:
        return Tally(
            delivered=bytes(self.delivered),
            duplicates=self.duplicates,
            latencies=self.latencies.tobytes(),
            put=self.put,
            got=self.got,
            acked=self.acked,
            puts_done_at=self.puts_done_at,
            delivered_at=self.delivered_at,
            acked_at=self.acked_at,
            cpu_s=cpu_s,
            errors=self.errors,
        )


class Producer:
    """Puts messages ``lo..hi-1``: ``batch`` per request, ``window`` requests in flight."""

    def __init__(self, load: Load, lo: int, hi: int) -> None:
        self.load = load
        self.next = lo
        self.stop = hi
        window, self.batch = load.plan.shape()
        self.limit = window * self.batch
        self.outstanding = 0
        self.conn: Adapter | None = None
        self.keys = load.plan.keys

    def begin(self) -> None:
        assert self.conn is not None
        self.conn.cork()
        self._fill()
        self.conn.flush()

    def _fill(self) -> None:
        conn = self.conn
        assert conn is not None
        fmt = self.load.body_format
        while self.outstanding < self.limit and self.next < self.stop:
            lo = self.next
            hi = min(lo + self.batch, self.stop)
            now = now_us()
            bodies = [fmt % (i, now) for i in range(lo, hi)]
            if self.keys:
                conn.put(bodies, [f"k{i % self.keys}" for i in range(lo, hi)])
            else:
                conn.put(bodies)
            self.outstanding += hi - lo
            self.next = hi

    def on_put(self, n: int) -> None:
        self.outstanding -= n
        self.load.on_put(n)
        self._fill()

    def cancel(self) -> None:
        """Stop for good (a paced producer has a timer to cancel)."""

    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None:
        self.load.fail("a producer connection got messages")

    def on_acked(self, conn: Adapter, n: int) -> None:
        self.load.fail("a producer connection got an ACK reply")

    def on_error(self, text: str) -> None:
        self.load.fail(text)


class PacedProducer(Producer):
    """Puts one message every ``interval_s`` whatever the replies (a fixed offered load)."""

    def __init__(self, load: Load, lo: int, hi: int, interval_s: float, offset_s: float) -> None:
        super().__init__(load, lo, hi)
        self.interval_s = interval_s
        self.offset_s = offset_s
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._sent = 0

    def begin(self) -> None:
        self._t0 = self._loop.time() + self.offset_s
        self._handle = self._loop.call_at(self._t0, self._tick)

    def _tick(self) -> None:
        conn = self.conn
        if self.next >= self.stop or self.load.errors or conn is None:
            return
        conn.put([self.load.body_format % (self.next, now_us())])
        self.next += 1
        self._sent += 1
        self._handle = self._loop.call_at(self._t0 + self._sent * self.interval_s, self._tick)

    def on_put(self, n: int) -> None:
        self.load.on_put(n)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


class Consumer:
    """Takes exactly ``quota`` messages with blocking gets and acks each get's messages.

    Up to ``window`` operations (gets and acks) in flight, each get asking for up
    to ``batch`` messages; the messages asked for by gets in flight never exceed
    what the quota still owes, so every get is eventually answered by a message
    (a broker that holds a connection's later commands behind a blocked one,
    beanstalkd's reserve or Redis' BLMOVE, never holds an ack for good). A get
    asking for fewer than ``batch`` (the quota's tail) goes out alone, so its
    reply is the one that comes back.
    """

    def __init__(self, load: Load, quota: int) -> None:
        self.load = load
        self.quota = quota
        self.window, self.batch = load.plan.shape()
        self.received = 0
        self.claimed = 0  # messages asked for by the gets in flight
        self.short = 0  # the size of a short get in flight (0: none)
        self.gets_out = 0
        self.acks_out = 0
        self.conn: Adapter | None = None

    def begin(self) -> None:
        assert self.conn is not None
        self.conn.cork()
        self._refill()
        self.conn.flush()

    def _refill(self) -> None:
        conn = self.conn
        assert conn is not None
        if self.load.errors:
            return
        while self.gets_out + self.acks_out < self.window:
            free = self.quota - self.received - self.claimed
            if free >= self.batch:
                k = self.batch
            elif free > 0 and self.gets_out == 0:
                k = self.short = free
            else:
                return
            conn.get(k)
            self.claimed += k
            self.gets_out += 1

    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None:
        self.gets_out -= 1
        self.claimed -= self.short or self.batch
        self.short = 0
        if items:
            self.received += len(items)
            self.load.on_delivered(items)
            conn.ack([token for token, _ in items])
            self.acks_out += 1
        self._refill()

    def on_acked(self, conn: Adapter, n: int) -> None:
        self.acks_out -= 1
        self.load.on_acked(n)
        self._refill()

    def on_put(self, n: int) -> None:
        self.load.fail("a consumer connection got a PUT reply")

    def on_error(self, text: str) -> None:
        self.load.fail(text)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``0..n`` cut into ``parts`` contiguous ranges whose sizes differ by at most one."""
    step, extra = divmod(n, parts)
    out, lo = [], 0
    for p in range(parts):
        hi = lo + step + (1 if p < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def producers_of(load: Load, share: Share) -> list[Producer]:
    plan = load.plan
    if plan.mode != "rate":
        return [Producer(load, lo, hi) for lo, hi, _ in share.producers]
    interval = plan.producers / plan.rate  # slot p of P starts p/P of an interval late
    return [
        PacedProducer(load, lo, hi, interval, slot * interval / plan.producers)
        for lo, hi, slot in share.producers
    ]
