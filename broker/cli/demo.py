"""``wonderq demo``: a narrated tour of what the broker guarantees, in under a minute.

Owns: five scenarios, each told as it runs and each checking its own outcome:
producers and consumers; a consumer that crashes; a consumer that stalls past
its lease; a poison message; and the keyed counter race. It talks to the broker
only through the bundled Python client, as a user would.
Must never: leave a broker, a client or a task running after it returns, or
wait on the clock for something to happen (each step awaits the event it
narrates: a delivery, an ack, a dead letter).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import wonderq
from broker.cli.target import (
    EXIT_USAGE,
    Target,
    UsageError,
    add_target_flags,
    explain,
    names_a_broker,
    target_from,
    tell,
)
from broker.config import Config
from broker.server import Server
from broker.server.loop import run as run_loop

STEPS = 5


@dataclass(frozen=True, slots=True)
class Pace:
    """How big and how slow the demo is."""

    lease_s: float  # lease of the stalling consumer
    jobs: int  # step 1: messages put
    producers: int
    consumers: int
    put_gap_s: float  # pause between two puts of one producer (so counts can be watched)
    work_s: float  # time one job takes
    backoff_s: float  # step 4: retry delay per attempt
    counters: tuple[str, ...]  # step 5
    increments: int  # per counter
    workers: int  # step 5: workers per run, each on its own connection
    concurrency: int  # step 5: messages each worker handles at once
    think_s: float  # step 5: longest pause between read and write


NORMAL = Pace(
    lease_s=2.0,
    jobs=60,
    producers=3,
    consumers=3,
    put_gap_s=0.05,
    work_s=0.05,
    backoff_s=0.5,
    counters=("apples", "pears", "plums"),
    increments=20,
    workers=4,
    concurrency=4,
    think_s=0.05,
)
FAST = replace(
    NORMAL,
    lease_s=0.3,
    jobs=30,
    put_gap_s=0.0,
    work_s=0.005,
    backoff_s=0.05,
    increments=10,
    think_s=0.01,
)
# slow enough to follow in `wonderq top`: producers outpace consumers, so the
# jobs queue fills for about ten seconds, then drains
WATCH = replace(NORMAL, jobs=600, work_s=0.2, increments=40, think_s=0.1)
WAIT_S = 1.0  # how long the demo's workers long-poll; also bounds how long a stop takes
STEP_TIMEOUT_S = 30.0  # no step may take longer than this


class DemoFailed(Exception):
    """A step's outcome was not what the broker promises."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise DemoFailed(what)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="watch a narrated demo of the broker's guarantees",
        description="A narrated scenario against an in-process broker (or the one at "
        "--host/--port, or $WONDERQ_HOST/$WONDERQ_PORT): producers and consumers, a crash, a "
        "stall past a lease, a poison message, and the keyed counter race. Each step checks "
        "its own outcome.",
    )
    add_target_flags(p, what="a running broker instead of an in-process one")
    p.add_argument(
        "--fast", action="store_true", help="short leases and fewer messages (a few seconds)"
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="more and slower jobs, to watch in `wonderq top` (about half a minute)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the random think times")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pace = FAST if args.fast else WATCH if args.watch else NORMAL
    try:
        # no flag nor variable names a broker: the demo starts its own
        target = target_from(args) if names_a_broker(args) else None
    except UsageError as exc:
        tell(args, str(exc))
        return EXIT_USAGE
    client_log = logging.getLogger("wonderq")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # the demo narrates the failures itself
    try:
        return run_loop(_main(target, pace, args.seed))
    finally:
        client_log.setLevel(level)


async def _main(target: Target | None, pace: Pace, seed: int | None) -> int:
    async with AsyncExitStack() as stack:
        if target is None:
            server = await stack.enter_async_context(Server(Config(host="127.0.0.1", port=0)))
            target, where = Target(server.host, server.port), "an in-process broker"
        else:
            where = "the broker"
        demo = Demo(target, pace, random.Random(seed))
        say(f"WonderQ demo: {where} at {target.where}; queues named {demo.prefix}.*\n")
        started = time.monotonic()
        try:
            await demo.run_all()
        except DemoFailed as exc:
            say(f"\nFAILED: {exc}")
            return 1
        except wonderq.WonderQError as exc:
            say(f"\nFAILED: {explain(target, exc)}")
            return 1
        say(f"\nAll {STEPS} steps behaved as promised ({time.monotonic() - started:.1f} s).")
    return 0


def say(text: str) -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, target: Target, pace: Pace, rng: random.Random) -> None:
        self.target = target
        self.pace = pace
        self.rng = rng
        self.prefix = f"demo-{secrets.token_hex(3)}"

    def q(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @asynccontextmanager
    async def client(self) -> AsyncIterator[wonderq.AsyncClient]:
        async with self.target.async_client() as client:
            yield client

    async def run_all(self) -> None:
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("Producers and consumers", self.producers_and_consumers),
            ("A consumer crashes mid-work", self.crash),
            ("A consumer stalls past its lease", self.stall),
            ("A poison message", self.poison),
            ("The keyed counter race", self.counter_race),
        ]
        for number, (title, step) in enumerate(steps, 1):
            say(f"{number}. {title}")
            async with asyncio.timeout(STEP_TIMEOUT_S):
                await step()
            say("")
        await self.final_stats()

    # 1 -------------------------------------------------------------------

    async def producers_and_consumers(self) -> None:
        pace, queue = self.pace, self.q("jobs")
        say(
            f"   {pace.producers} producers put {pace.jobs} jobs; "
            f"{pace.consumers} consumers take, work and ack them as they come."
        )
        acked = 0
        done = asyncio.Event()
        report_every = max(1, pace.jobs // 5)

        async with AsyncExitStack() as stack:
            watcher = await stack.enter_async_context(self.client())

            async def handle(message: wonderq.Message) -> None:
                nonlocal acked
                await asyncio.sleep(pace.work_s)  # the work
                await message.ack()
                acked += 1
                if acked % report_every == 0:
                    s = (await watcher.stats(queue)).queues[queue]
                    say(
                        f"   put {s.put:3}  acked {s.acked:3}  ready {s.ready:3}  leased {s.leased}"
                    )
                if acked == pace.jobs:
                    done.set()

            stop = asyncio.Event()
            consumers = [
                await stack.enter_async_context(self.client()) for _ in range(pace.consumers)
            ]
            workers = [
                asyncio.create_task(
                    c.run_worker(
                        queue, handle, concurrency=2, wait=WAIT_S, stop=stop, stop_signals=()
                    )
                )
                for c in consumers
            ]
            try:
                share = pace.jobs // pace.producers
                counts = [share] * (pace.producers - 1) + [pace.jobs - share * (pace.producers - 1)]
                await asyncio.gather(
                    *(self.produce(queue, n, count) for n, count in enumerate(counts))
                )
                await done.wait()
                stop.set()
                await asyncio.gather(*workers)
            finally:
                for worker in workers:
                    worker.cancel()
            s = (await watcher.stats(queue)).queues[queue]
        check(s.put == pace.jobs, f"{s.put} jobs put, expected {pace.jobs}")
        check(s.acked == pace.jobs, f"{s.acked} jobs acked, expected {pace.jobs}")
        check((s.ready, s.leased) == (0, 0), f"{s.ready} ready and {s.leased} leased are left")
        say(f"   [ok] all {pace.jobs} jobs acked exactly once; nothing left over")

    async def produce(self, queue: str, producer: int, count: int) -> None:
        async with self.client() as client:
            for n in range(count):
                await client.put(queue, {"producer": producer, "job": n})
                if self.pace.put_gap_s:
                    await asyncio.sleep(self.pace.put_gap_s)  # pacing, for the watcher

    # 2 -------------------------------------------------------------------

    async def crash(self) -> None:
        queue, count, lease = self.q("crash"), 5, 30.0
        async with self.client() as a, self.client() as b:
            await a.put_many(queue, [f"order {n}" for n in range(count)])
            taken = await a.get(queue, max=count, lease=lease)
            check(len(taken) == count, f"consumer A leased {len(taken)} of {count}")
            say(f"   Consumer A leases {count} messages for {lease:g} s, then crashes mid-work.")
            loop = asyncio.get_running_loop()
            waiting = asyncio.create_task(b.get(queue, max=count, wait=10))
            await b.ping()  # B's GET is waiting on the broker now
            crashed_at = loop.time()
            await a.close()  # the crash: A's connection drops
            redelivered = await waiting
            after = loop.time() - crashed_at
            for _ in range(count):  # bounded: the broker may hand them out in parts
                if len(redelivered) >= count:
                    break
                redelivered += await b.get(queue, max=count - len(redelivered), wait=2)
            say(
                f"   Consumer B, waiting, gets all {len(redelivered)} after {after * 1000:.0f} ms "
                f"(not after the {lease:g} s lease), attempts now "
                f"{sorted({m.attempts for m in redelivered})}."
            )
            check(
                {m.id for m in redelivered} == {m.id for m in taken},
                "B did not get exactly A's messages",
            )
            check(all(m.attempts == 2 for m in redelivered), "redelivered attempts are not 2")
            check(after < lease / 2, f"redelivery took {after:.1f} s")
            await b.ack_many([m.id for m in redelivered])
            s = (await b.stats(queue)).queues[queue]
        check(s.released_on_disconnect == count, "STATS does not count the released messages")
        say(f"   [ok] released_on_disconnect = {s.released_on_disconnect}; B acked them all")

    # 3 -------------------------------------------------------------------

    async def stall(self) -> None:
        queue, lease = self.q("stall"), self.pace.lease_s
        async with self.client() as a, self.client() as b:
            await a.put(queue, "resize image 42")
            [held] = await a.get(queue, lease=lease)
            say(f"   Consumer A leases a message for {lease:g} s and stalls.")
            loop = asyncio.get_running_loop()
            leased_at = loop.time()
            waiting = asyncio.create_task(b.get(queue, wait=lease * 10))
            redelivered = await waiting
            after = loop.time() - leased_at
            check(len(redelivered) == 1, "B got nothing")
            [message] = redelivered
            say(
                f"   The lease runs out; consumer B gets it after {after:.2f} s "
                f"(attempt {message.attempts})."
            )
            check(message.id == held.id and message.attempts == 2, "B did not get A's message")
            check(after >= lease * 0.8, f"redelivered after {after:.2f} s, before the lease ended")
            try:
                await held.ack()
            except wonderq.NotLeased as exc:
                say(f"   A wakes up and acks: refused, {exc.code}: {exc.message}")
            else:
                raise DemoFailed("A's late ACK was accepted")
            await message.ack()
            s = (await b.stats(queue)).queues[queue]
        check((s.expired, s.acked) == (1, 1), f"expired {s.expired}, acked {s.acked}")
        say("   [ok] B's ACK counts; the message was handled once, by B")

    # 4 -------------------------------------------------------------------

    async def poison(self) -> None:
        queue, max_attempts = self.q("poison"), 3
        backoff_s = self.pace.backoff_s
        failures: list[int] = []
        async with self.client() as worker_client, self.client() as observer:
            msg_id = await observer.put(queue, {"image": "corrupt.png"}, max_attempts=max_attempts)
            say(
                f"   A message that always fails, with max_attempts={max_attempts}; the worker "
                f"retries it after {backoff_s:g} s x attempt."
            )

            async def handle(message: wonderq.Message) -> None:
                failures.append(message.attempts)
                say(f"   attempt {message.attempts}: ValueError('cannot decode corrupt.png')")
                raise ValueError("cannot decode corrupt.png")

            worker = asyncio.create_task(
                worker_client.run_worker(
                    queue,
                    handle,
                    wait=WAIT_S,
                    backoff=lambda attempts: backoff_s * attempts,
                    stop_signals=(),
                )
            )
            try:
                dead: list[wonderq.Message] = []
                for _ in range(10):  # bounded: each GET waits on the broker
                    dead = await observer.get(f"{queue}.dead", wait=2)
                    if dead:
                        break
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            check(len(dead) == 1 and dead[0].id == msg_id, "it never reached the dead queue")
            say(f"   After {len(failures)} attempts the broker moved it to {queue}.dead.")
            check(failures == [1, 2, 3], f"attempts seen: {failures}")
            await dead[0].ack()
            s = (await observer.stats(queue)).queues[queue]
        check(s.dead_lettered == 1, "STATS does not count the dead letter")
        say(
            "   [ok] the poison message stopped being retried and waits for a human in .dead "
            "(`wonderq peek Q --state dead` lists dead letters, `wonderq redrive Q` retries them)"
        )

    # 5 -------------------------------------------------------------------

    async def counter_race(self) -> None:
        pace = self.pace
        expected = {name: pace.increments for name in pace.counters}
        say(
            f"   {pace.workers} workers x {pace.concurrency} at once do read-modify-write on "
            f"{len(pace.counters)} shared counters ({pace.increments} increments each), "
            f"with a random pause between read and write."
        )
        unkeyed, keyed = await asyncio.gather(
            self.race(self.q("counters-nokey"), keyed=False),
            self.race(self.q("counters-keyed"), keyed=True),
        )
        say(f"   {'counter':<10}{'expected':>10}{'without key':>14}{'with key':>11}")
        for name in pace.counters:
            say(f"   {name:<10}{expected[name]:>10}{unkeyed[name]:>14}{keyed[name]:>11}")
        total = sum(expected.values())
        say(f"   {'total':<10}{total:>10}{sum(unkeyed.values()):>14}{sum(keyed.values()):>11}")
        check(keyed == expected, f"with keys the counters are {keyed}, expected {expected}")
        check(sum(unkeyed.values()) < total, "without keys no update was lost (very unlikely)")
        say(
            f"   [ok] without keys {total - sum(unkeyed.values())} updates were lost; "
            f"with a key per counter, every one counted"
        )

    async def race(self, queue: str, *, keyed: bool) -> dict[str, int]:
        pace = self.pace
        store = dict.fromkeys(pace.counters, 0)  # the shared "database"
        total = len(pace.counters) * pace.increments
        handled = 0
        done = asyncio.Event()
        stop = asyncio.Event()
        think = [self.rng.uniform(0, pace.think_s) for _ in range(total)]

        async def increment(message: wonderq.Message) -> None:
            nonlocal handled
            name = message.body["counter"]
            value = store[name]  # read
            await asyncio.sleep(think[message.body["n"]])  # think
            store[name] = value + 1  # write
            handled += 1
            if handled == total:
                done.set()

        async with AsyncExitStack() as stack:
            producer = await stack.enter_async_context(self.client())
            items = [
                wonderq.Envelope({"counter": name, "n": i * len(pace.counters) + c}, key=name)
                if keyed
                else {"counter": name, "n": i * len(pace.counters) + c}
                for i in range(pace.increments)
                for c, name in enumerate(pace.counters)
            ]
            await producer.put_many(queue, items)
            clients = [await stack.enter_async_context(self.client()) for _ in range(pace.workers)]
            workers = [
                asyncio.create_task(
                    c.run_worker(
                        queue,
                        increment,
                        concurrency=pace.concurrency,
                        wait=WAIT_S,
                        stop=stop,
                        stop_signals=(),
                    )
                )
                for c in clients
            ]
            try:
                await done.wait()
                stop.set()
                await asyncio.gather(*workers)
            finally:
                for worker in workers:
                    worker.cancel()
        return store

    # the end -------------------------------------------------------------

    async def final_stats(self) -> None:
        async with self.client() as client:
            stats = await client.stats()
        say("Final STATS of the demo's queues:")
        columns = ("put", "acked", "nacked", "expired", "released_on_disconnect", "dead_lettered")
        short = ("put", "acked", "nacked", "expired", "released", "dead-lettered")
        say(f"   {'queue':<32}" + "".join(f"{c:>10}" if len(c) < 10 else f"{c:>14}" for c in short))
        for name, q in sorted(stats.queues.items()):
            if not name.startswith(self.prefix):
                continue
            values = [getattr(q, c) for c in columns]
            say(
                f"   {name:<32}"
                + "".join(
                    f"{v:>10}" if len(c) < 10 else f"{v:>14}"
                    for v, c in zip(values, short, strict=True)
                )
            )
        s = stats.server
        say(
            f"   server: messages held {s.messages}, leased {s.leased}, "
            f"connections {s.connections}, up {s.uptime:.1f} s"
        )
