"""One measured run: the load processes that make it, and the merge of what they saw.

Owns: cutting a ``Plan`` into ``Share``s, one per load process (producers and
consumers in separate processes when there are two or more, so the load
generator is not one saturated core), starting those processes
(``python -P -m broker.bench.worker``), starting them together, the run's deadline,
the broker's CPU and memory around the run (from ``/proc``), and merging the
processes' ``Tally``s into one ``Result``: the exactly-once check across
processes (a message delivered to two processes is a duplicate), latency
percentiles, rates, and each side's CPU (the broker's, and every load
process's, so a reader can see the load generator was not the bottleneck).
Must never: leave a load process running on return (each is stopped by its PID),
or count a message no process saw acked.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from broker.bench.procs import BenchError, Measured
from broker.bench.where import Where
from broker.bench.worker import Abort, Done, Frame, Go, Job, PutDone, Ready, encode, read_frame
from broker.bench.workloads import Plan, Share, Tally, split

#: two cores: the broker needs one, the producers and consumers one process each
DEFAULT_PROCS: Final = 2
STOP_TIMEOUT_S: Final = 5.0
READY_TIMEOUT_S: Final = 60.0  # to start and open its connections
_WORKER: Final = (sys.executable, "-P", "-m", "broker.bench.worker")


@dataclass
class Result:
    broker: str
    mode: str
    messages: int
    background: str = ""
    put_per_s: float = 0.0
    delivered_per_s: float = 0.0
    acked_per_s: float = 0.0  # end to end: first put to last ack
    latency_ms: dict[str, float] = field(default_factory=dict)
    server_cpu_us_per_msg: float = 0.0
    store_cpu_us_per_msg: float | None = None  # Redis's, for a broker that keeps queues there
    server_cpu_pct: float = 0.0  # of one core, over the run
    client_cpu_us_per_msg: float = 0.0  # every load process together
    client_cpu_max_pct: float = 0.0  # the busiest load process, % of one core
    load_procs: int = 0
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


def shares_of(plan: Plan, procs: int) -> list[Share]:
    """One share per load process: producers in the first half, consumers in the rest."""
    producers = [(lo, hi, p) for p, (lo, hi) in enumerate(split(plan.messages, plan.producers))]
    consumers = [(q, plan.producers + c) for c, q in enumerate(quotas_of(plan, producers))]
    procs = max(1, min(procs, plan.producers + plan.consumers))
    if procs == 1:
        return [Share(producers=producers, consumers=consumers)]
    c_procs = min(plan.consumers, procs - procs // 2)
    p_procs = min(plan.producers, procs - c_procs)
    c_procs = min(plan.consumers, procs - p_procs)  # what the producers could not use
    shares = [Share(producers=[], consumers=[]) for _ in range(p_procs + c_procs)]
    for i, prod in enumerate(producers):
        shares[i % p_procs].producers.append(prod)
    for i, cons in enumerate(consumers):
        shares[p_procs + i % c_procs].consumers.append(cons)
    return shares


def quotas_of(plan: Plan, producers: list[tuple[int, int, int]]) -> list[int]:
    """Each consumer's quota: the messages put on its queue, split between the consumers
    of that queue (one queue: every message split between every consumer)."""
    put = [0] * plan.queues
    for lo, hi, p in producers:
        put[p % plan.queues] += hi - lo
    quotas = [0] * plan.consumers
    for q in range(plan.queues):
        mine = [c for c in range(plan.consumers) if c % plan.queues == q]
        if not mine:
            if put[q]:
                raise BenchError(f"queue {q} has producers and no consumer: -C below --queues")
            continue
        for c, (lo, hi) in zip(mine, split(put[q], len(mine)), strict=True):
            quotas[c] = hi - lo
    return quotas


def _state(pid: int) -> str:
    """A process's scheduler state and where it sleeps, for an error message."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
        return f"state {state}, wchan {Path(f'/proc/{pid}/wchan').read_text()}"
    except OSError:
        return "gone"


class LoadProcess:
    """A load process seen from the parent: frames in and out, stopped by its PID."""

    def __init__(self, proc: asyncio.subprocess.Process, errors: IO[bytes]) -> None:
        self.proc = proc
        self.errors = errors

    @classmethod
    async def start(cls) -> LoadProcess:
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (open while it runs; closed by stop)
        try:
            proc = await asyncio.create_subprocess_exec(
                *_WORKER,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
            )
        except BaseException:
            errors.close()
            raise
        return cls(proc, errors)

    async def send(self, frame: Frame) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(encode(frame))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it has exited: ``recv`` says how

    def _stderr(self) -> str:
        self.errors.seek(0)
        return self.errors.read()[-2000:].decode(errors="replace").strip()

    async def recv(self) -> Frame:
        assert self.proc.stdout is not None
        frame = await read_frame(self.proc.stdout)
        if frame is None:
            await self.proc.wait()
            raise BenchError(f"a load process exited ({self.proc.returncode}): {self._stderr()}")
        return frame

    async def ready(self, timeout_s: float) -> None:
        """Wait for ``Ready`` (its connections are open), at most ``timeout_s``."""
        try:
            await asyncio.wait_for(self.expect(Ready), timeout_s)
        except TimeoutError:
            pid = self.proc.pid
            raise BenchError(
                f"load process {pid} not ready after {timeout_s:g}s ({_state(pid)}): "
                f"{self._stderr() or 'nothing on stderr'}"
            ) from None

    async def expect(self, kind: type[Ready] | type[PutDone]) -> None:
        frame = await self.recv()
        if isinstance(frame, Done):  # it stopped early: its tally says why
            raise BenchError("; ".join(frame.tally.errors[:3]) or "a load process stopped early")
        if not isinstance(frame, kind):
            raise BenchError(f"a load process said {frame!r}, not {kind.__name__}")

    async def done(self) -> Tally:
        while True:  # skip PutDone: only a fill run waits for it
            frame = await self.recv()
            if isinstance(frame, Done):
                return frame.tally

    async def stop(self) -> None:
        if self.proc.returncode is None:
            await self.send(Abort())  # it stops, says Done (read below: it never blocks), exits
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # (communicate() without input leaves stdin open)
            try:
                await asyncio.wait_for(self.proc.communicate(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.errors.close()


async def _collect(workers: list[LoadProcess]) -> list[Tally]:
    """Every process's tally; the first to report an error makes the others abort."""
    pending = {asyncio.create_task(w.done()): w for w in workers}
    tallies: list[Tally] = []
    try:
        while pending:
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                del pending[task]
                tally = task.result()
                tallies.append(tally)
                if tally.errors:
                    for other in pending.values():
                        await other.send(Abort())
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # their reads end here
    return tallies


async def run_plan(
    adapter: str, where: Where, plan: Plan, server: Measured, result: Result, procs: int
) -> None:
    """One measured run with ``procs`` load processes; fills ``result``.

    Raises BenchError when the run cannot complete (a process died, the deadline).
    """
    shares = shares_of(plan, procs)
    workers: list[LoadProcess] = []
    try:
        for share in shares:
            workers.append(await LoadProcess.start())
            await workers[-1].send(Job(adapter=adapter, where=where, plan=plan, share=share))
        for w in workers:
            await w.ready(READY_TIMEOUT_S)
        await asyncio.sleep(0.05)  # let the server settle after the connections
        rss_empty, cpu0, store0 = server.rss_bytes(), server.cpu_s(), server.store_cpu_s()
        started_at = time.perf_counter()
        async with asyncio.timeout(plan.timeout_s):
            if plan.mode == "fill":  # everything queued first, then the memory, then drained
                for w in workers:
                    await w.send(Go(phase="put"))
                for w in workers:
                    await w.expect(PutDone)
                result.server_rss_bytes = server.rss_bytes()
                if server.pid > 0:  # else a server we know nothing of: no memory figure
                    per_msg = (result.server_rss_bytes - rss_empty) / plan.messages
                    result.rss_bytes_per_msg = round(per_msg, 1)
                for w in workers:
                    await w.send(Go(phase="get"))
            else:
                for w in workers:
                    await w.send(Go(phase="all"))
            tallies = await _collect(workers)
        cpu_s = server.cpu_s() - cpu0
        store = server.store_cpu_s()
    except TimeoutError:
        raise BenchError(f"timed out after {plan.timeout_s:g}s") from None
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
    merge(result, plan, tallies, started_at, cpu_s)
    if store is not None and store0 is not None:
        result.store_cpu_us_per_msg = round((store - store0) / plan.messages * 1e6, 2)
    if not result.server_rss_bytes:
        result.server_rss_bytes = server.rss_bytes()


def merge(
    result: Result, plan: Plan, tallies: list[Tally], started_at: float, cpu_s: float
) -> None:
    """Fold every load process's tally into ``result``."""
    n = plan.messages
    seen = 0  # bit i of byte i: delivered to some process (bytes hold 0 or 1)
    duplicates = 0
    latencies: array[float] = array("d")
    for t in tallies:
        mine = int.from_bytes(t.delivered, "little")
        duplicates += t.duplicates + (seen & mine).bit_count()
        seen |= mine
        latencies.frombytes(t.latencies)
    result.delivered_once = seen.bit_count()
    result.duplicates = duplicates
    result.missing = n - result.delivered_once
    result.acked = sum(t.acked for t in tallies)
    result.exactly_once = duplicates == 0 and result.missing == 0 and result.acked == n
    result.latency_ms = percentiles(latencies)
    result.load_procs = len(tallies)
    for t in tallies:
        result.notes.extend(t.errors)

    def rate(instants: list[float]) -> float:
        if not instants or min(instants) <= 0:
            return 0.0
        return round(n / (max(instants) - started_at))

    result.put_per_s = rate([t.puts_done_at for t in tallies if t.put])
    result.delivered_per_s = rate([t.delivered_at for t in tallies if t.got])
    result.acked_per_s = rate([t.acked_at for t in tallies if t.got])
    ended_at = max([t.acked_at for t in tallies] + [t.puts_done_at for t in tallies])
    seconds = max(ended_at - started_at, 1e-9)
    result.seconds = round(seconds, 3)
    result.server_cpu_us_per_msg = round(cpu_s / n * 1e6, 2)
    result.server_cpu_pct = round(cpu_s / seconds * 100, 1)
    result.client_cpu_us_per_msg = round(sum(t.cpu_s for t in tallies) / n * 1e6, 2)
    busiest = max(
        t.cpu_s / max((max(t.acked_at, t.puts_done_at) or ended_at) - started_at, 1e-9)
        for t in tallies
    )
    result.client_cpu_max_pct = round(busiest * 100, 1)


def default_procs() -> int:
    """Load processes when ``--procs`` is not given."""
    return DEFAULT_PROCS if (os.cpu_count() or 1) >= 2 else 1
