"""The blocking client's run_worker: handlers in threads, up to concurrency at once, acked or
nacked like the asyncio worker's, leases kept alive, a clean stop. Real broker (in the test's
loop); the blocking code runs in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import wonderq
from wonderq import MessageState

R = TypeVar("R")
T = 10.0


async def in_thread(fn: Callable[[], R]) -> R:
    async with asyncio.timeout(T):
        return await asyncio.to_thread(fn)


async def test_sync_run_worker_runs_handlers_in_threads_up_to_concurrency(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    await client.put_many("jobs", list(range(8)))
    together = threading.Barrier(4, timeout=T)  # four handlers must run at the same time
    stop = threading.Event()
    done: list[int] = []
    lock = threading.Lock()
    threads: set[str] = set()

    def handler(message: wonderq.SyncMessage) -> None:
        together.wait()
        with lock:
            threads.add(threading.current_thread().name)
            done.append(message.body)
            if len(done) == 8:
                stop.set()

    def run() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.run_worker("jobs", handler, concurrency=4, wait=1, stop=stop)

    await in_thread(run)
    assert sorted(done) == list(range(8)) and not together.broken
    assert len(threads) == 4 and all(t.startswith("wonderq-handler") for t in threads)
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.acked, stats.nacked, stats.ready, stats.leased) == (8, 0, 0, 0)


async def test_sync_run_worker_retries_with_backoff_and_lets_handlers_settle(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    await client.put_many("jobs", ["flaky", "ack-me", "nack-me"])
    stop = threading.Event()
    seen: list[tuple[str, int]] = []

    def handler(message: wonderq.SyncMessage) -> None:
        seen.append((message.body, message.attempts))
        if message.body == "flaky" and message.attempts == 1:
            raise RuntimeError("not yet")
        if message.body == "ack-me":
            message.ack()
        elif message.body == "nack-me":
            assert message.nack(delay=60) is False
        if len(seen) == 4:
            stop.set()

    def run() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.run_worker("jobs", handler, concurrency=1, wait=1, stop=stop, backoff=lambda a: 0.01)

    await in_thread(run)
    assert sorted(seen) == [("ack-me", 1), ("flaky", 1), ("flaky", 2), ("nack-me", 1)]
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.acked, stats.nacked, stats.delayed, stats.leased) == (2, 2, 1, 0)


async def test_sync_run_worker_keeps_the_lease_of_a_slow_handler(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    lease = 0.3
    msg_id = await client.put("slow", "work")
    started = threading.Event()
    finish = threading.Event()
    stop = threading.Event()

    def handler(message: wonderq.SyncMessage) -> None:
        started.set()
        finish.wait(T)
        stop.set()

    def run() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.run_worker("slow", handler, lease=lease, wait=1, stop=stop)

    worker = asyncio.create_task(in_thread(run))
    try:
        async with asyncio.timeout(T):
            await asyncio.to_thread(started.wait, T)
        # Waits four leases long: were the lease not extended, this GET would get it.
        assert await client.get("slow", wait=4 * lease) == []
        info = await client.info(msg_id)
        assert (info.state, info.attempts) == (MessageState.LEASED, 1)
    finally:
        finish.set()
        await worker
    stats = (await client.stats("slow")).queues["slow"]
    assert (stats.acked, stats.expired) == (1, 0)


async def test_a_handler_past_the_grace_period_is_released_and_its_late_ack_fails(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    msg_id = await client.put("jobs", "stuck")
    started = threading.Event()
    late_ack = threading.Event()
    late: list[BaseException] = []
    tried = threading.Event()
    stop = threading.Event()

    def handler(message: wonderq.SyncMessage) -> None:
        started.set()
        stop.set()  # the worker stops at once, and gives this handler 0.1 s
        late_ack.wait(T)
        try:
            message.ack()
        except BaseException as exc:
            late.append(exc)
            raise
        finally:
            tried.set()

    def run() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.run_worker("jobs", handler, wait=1, stop=stop, grace=0.1)

    await in_thread(run)  # returned while the handler's thread still runs
    assert started.is_set() and not late
    info = await client.info(msg_id)
    assert (info.state, info.attempts) == (MessageState.READY, 1)  # released
    late_ack.set()
    async with asyncio.timeout(T):
        await asyncio.to_thread(tried.wait, T)
    assert len(late) == 1 and isinstance(late[0], wonderq.ConnectionLost)
    assert (await client.info(msg_id)).state == MessageState.READY
