"""consume() and run_worker(): concurrency, long-polling, ack/nack with backoff, lease touching, clean stops."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import pytest

import wonderq
from wonderq import MessageState

T = 5.0  # seconds any single await in these tests may take


async def fetch(client: wonderq.AsyncClient, queue: str, count: int) -> list[wonderq.Message]:
    """Lease ``count`` messages from ``queue``, waiting (bounded) for them to become ready."""
    got: list[wonderq.Message] = []
    async with asyncio.timeout(T):
        for _ in range(count * 2):  # bounded: each GET waits on the server
            if len(got) >= count:
                break
            got += await client.get(queue, max=count - len(got), lease=30, wait=T)
    assert len(got) == count, got
    return got


def test_exponential_backoff_doubles_from_one_second_up_to_five_minutes() -> None:
    delays = [wonderq.exponential_backoff(a) for a in (1, 2, 3, 4, 9, 10, 1000)]
    assert delays == [1, 2, 4, 8, 256, 300, 300]


async def test_consume_holds_at_most_concurrency_unsettled(client: wonderq.AsyncClient) -> None:
    await client.put_many("jobs", list(range(10)))
    messages = client.consume("jobs", concurrency=3, lease=30, wait=T)
    async with contextlib.aclosing(messages):
        taken = [await anext(messages) for _ in range(3)]
        assert [m.body for m in taken] == [0, 1, 2]
        fourth = asyncio.create_task(anext(messages))
        await asyncio.sleep(0)  # one step: it must park on a free slot, not GET more
        await client.ping()
        stats = (await client.stats("jobs")).queues["jobs"]
        assert (stats.leased, stats.ready) == (3, 7)
        assert not fourth.done()
        await taken[0].ack()
        async with asyncio.timeout(T):
            assert (await fourth).body == 3
        assert (await client.stats("jobs")).queues["jobs"].leased == 3


async def test_consume_long_polls_for_new_messages(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    async with await wonderq.connect("127.0.0.1", broker.port) as producer:
        messages = client.consume("later", wait=T)
        async with contextlib.aclosing(messages):
            first = asyncio.create_task(anext(messages))
            await producer.put("later", "hello")
            async with asyncio.timeout(T):
                message = await first
            assert message.body == "hello"
            await message.ack()


async def test_leaving_consume_releases_unsettled_messages(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    await client.put_many("jobs", ["a", "b", "c"])
    messages = client.consume("jobs", concurrency=3, wait=T)
    async with contextlib.aclosing(messages):
        first = await anext(messages)  # "b" and "c" are leased and buffered
        await first.ack()
    async with await wonderq.connect("127.0.0.1", broker.port) as other:
        again = await fetch(other, "jobs", 2)
    assert sorted((m.body, m.attempts) for m in again) == [("b", 2), ("c", 2)]


async def test_cancelling_a_consumer_cancels_its_get_and_releases_at_once(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    # m1 is taken; the consumer then long-polls (30 s) for a second message.
    # Cancelled, it must end that GET on the server and release m1 at once,
    # without the GET taking m1 straight back (one attempt burned).
    await client.put("jobs", "m1")
    taken = asyncio.Event()

    async def consume() -> None:
        async for message in client.consume("jobs", concurrency=2, wait=30):
            assert message.body == "m1"
            taken.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(T):
        await taken.wait()
    await client.ping()  # the consumer's second GET is now waiting on the server
    assert (await client.stats("jobs")).queues["jobs"].waiting_consumers == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.ping()  # after the CANCEL and the NACK on the same connection
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.waiting_consumers, stats.ready, stats.leased) == (0, 1, 0)
    async with await wonderq.connect("127.0.0.1", broker.port) as other:
        [again] = await fetch(other, "jobs", 1)
    assert (again.body, again.attempts) == ("m1", 2)


async def test_a_worker_stopped_during_a_long_poll_releases_its_messages_at_once(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    ids = await client.put_many("jobs", ["a", "b"])
    started: list[str] = []
    both = asyncio.Event()
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        started.append(message.body)
        if len(started) == 2:
            both.set()
        await asyncio.Event().wait()  # stuck: cancelled after the grace period

    # A third slot keeps a GET waiting (30 s) on the server when the worker stops.
    worker = asyncio.create_task(
        client.run_worker("jobs", handler, concurrency=3, wait=30, stop=stop, grace=0)
    )
    try:
        async with asyncio.timeout(T):
            await both.wait()
            await client.ping()  # the third slot's GET now waits on the server
        assert (await client.stats("jobs")).queues["jobs"].waiting_consumers == 1
        async with asyncio.timeout(1.0):  # well under the GET's 30 s
            stop.set()
            await worker
            await client.ping()  # after the worker's CANCEL and NACKs
            stats = (await client.stats("jobs")).queues["jobs"]
            infos = [await client.info(i) for i in ids]
    finally:
        worker.cancel()
    assert (stats.waiting_consumers, stats.ready, stats.leased) == (0, 2, 0)
    # released, and not re-taken by the worker's own abandoned GET
    assert [(i.state, i.attempts) for i in infos] == [(MessageState.READY, 1)] * 2
    async with await wonderq.connect("127.0.0.1", broker.port) as other, asyncio.timeout(1.0):
        again = await fetch(other, "jobs", 2)
    assert sorted((m.body, m.attempts) for m in again) == [("a", 2), ("b", 2)]


async def test_cancelling_a_waiting_get_cancels_it_on_the_server(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    await client.config("jobs", lease=30)  # the queue exists, so STATS shows it
    waiting = asyncio.create_task(client.get("jobs", wait=30))
    async with asyncio.timeout(T):
        await client.ping()  # the GET now waits on the server
        assert (await client.stats("jobs")).queues["jobs"].waiting_consumers == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await client.ping()  # after the CANCEL
        assert (await client.stats("jobs")).queues["jobs"].waiting_consumers == 0
        # a message put now is not leased to the GET nobody awaits
        async with await wonderq.connect("127.0.0.1", broker.port) as other:
            msg_id = await other.put("jobs", "after")
            info = await other.info(msg_id)
    assert (info.state, info.attempts) == (MessageState.READY, 0)


async def test_a_timeout_around_a_waiting_get_cancels_it_on_the_server(
    client: wonderq.AsyncClient,
) -> None:
    await client.config("jobs", lease=30)  # the queue exists, so STATS shows it
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.get("jobs", wait=30)
    async with asyncio.timeout(T):
        await client.ping()
        assert (await client.stats("jobs")).queues["jobs"].waiting_consumers == 0


async def test_run_worker_acks_what_its_handler_finishes(client: wonderq.AsyncClient) -> None:
    count = 20
    await client.put_many("jobs", list(range(count)))
    seen: list[int] = []
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        seen.append(message.body)
        if len(seen) == count:
            stop.set()

    async with asyncio.timeout(T):
        await client.run_worker("jobs", handler, concurrency=4, wait=1, stop=stop)
    assert sorted(seen) == list(range(count))
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.acked, stats.ready, stats.leased, stats.nacked) == (count, 0, 0, 0)


async def test_run_worker_runs_up_to_concurrency_handlers_at_once(
    client: wonderq.AsyncClient,
) -> None:
    await client.put_many("jobs", list(range(10)))
    running = 0
    peak = 0
    full = asyncio.Event()
    gate = asyncio.Event()
    done = 0
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        if running == 4:
            full.set()
        await gate.wait()
        running -= 1
        done += 1
        if done == 10:
            stop.set()

    worker = asyncio.create_task(
        client.run_worker("jobs", handler, concurrency=4, wait=1, stop=stop)
    )
    try:
        async with asyncio.timeout(T):
            await full.wait()
        await client.ping()
        assert (await client.stats("jobs")).queues["jobs"].leased == 4
        gate.set()
        async with asyncio.timeout(T):
            await worker
    finally:
        worker.cancel()
    assert peak == 4 and done == 10


async def test_run_worker_nacks_failures_with_backoff_then_succeeds(
    client: wonderq.AsyncClient,
) -> None:
    await client.put("jobs", "flaky", max_attempts=5)
    loop = asyncio.get_running_loop()
    attempts: list[tuple[int, float]] = []
    backoff_calls: list[int] = []
    stop = asyncio.Event()

    def backoff(attempt: int) -> float:
        backoff_calls.append(attempt)
        return 0.1 * attempt

    async def handler(message: wonderq.Message) -> None:
        attempts.append((message.attempts, loop.time()))
        if message.attempts < 3:
            raise RuntimeError("not yet")
        stop.set()

    async with asyncio.timeout(T):
        await client.run_worker("jobs", handler, wait=1, backoff=backoff, stop=stop)
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert backoff_calls == [1, 2]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    slack = 0.005  # uvloop's clock ticks in milliseconds
    assert gaps[0] >= 0.1 - slack and gaps[1] >= 0.2 - slack  # each retry waited its backoff
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.nacked, stats.acked) == (2, 1)


async def test_a_message_that_always_fails_ends_in_the_dead_letter_queue(
    client: wonderq.AsyncClient, broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    msg_id = await client.put("jobs", "poison", max_attempts=3)
    calls = 0

    async def handler(message: wonderq.Message) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("always")

    worker = asyncio.create_task(client.run_worker("jobs", handler, wait=1, backoff=lambda a: 0))
    try:
        async with await wonderq.connect("127.0.0.1", broker.port) as other:
            [dead] = await fetch(other, "jobs.dead", 1)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert dead.id == msg_id and calls == 3
    assert "moved to jobs.dead" in caplog.text


async def test_a_slow_handler_keeps_its_lease(client: wonderq.AsyncClient, broker: Any) -> None:
    lease = 0.3
    msg_id = await client.put("slow", "work")
    started = asyncio.Event()
    finish = asyncio.Event()
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        started.set()
        await finish.wait()
        stop.set()

    worker = asyncio.create_task(client.run_worker("slow", handler, lease=lease, wait=1, stop=stop))
    try:
        async with asyncio.timeout(T):
            await started.wait()
        async with await wonderq.connect("127.0.0.1", broker.port) as other:
            # Waits four leases long: were the lease not extended, this GET would get it.
            assert await other.get("slow", wait=4 * lease) == []
            info = await other.info(msg_id)
            assert info.state == MessageState.LEASED and info.attempts == 1
        finish.set()
        async with asyncio.timeout(T):
            await worker
    finally:
        worker.cancel()
    stats = (await client.stats("slow")).queues["slow"]
    assert (stats.acked, stats.expired) == (1, 0)


async def test_cancelling_run_worker_cancels_handlers_and_releases_their_messages(
    client: wonderq.AsyncClient, broker: Any
) -> None:
    await client.put_many("jobs", ["a", "b"])
    started: list[str] = []
    both = asyncio.Event()
    cancelled: list[str] = []

    async def handler(message: wonderq.Message) -> None:
        started.append(message.body)
        if len(started) == 2:
            both.set()
        try:
            await asyncio.Event().wait()  # works forever
        except asyncio.CancelledError:
            cancelled.append(message.body)
            raise

    worker = asyncio.create_task(client.run_worker("jobs", handler, concurrency=2, wait=1))
    async with asyncio.timeout(T):
        await both.wait()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert sorted(cancelled) == ["a", "b"]
    async with await wonderq.connect("127.0.0.1", broker.port) as other:
        again = await fetch(other, "jobs", 2)
    assert sorted((m.body, m.attempts) for m in again) == [("a", 2), ("b", 2)]


async def test_stopping_run_worker_lets_handlers_in_flight_finish(
    client: wonderq.AsyncClient,
) -> None:
    await client.put_many("jobs", ["a", "b", "c"])
    started = asyncio.Event()
    finish = asyncio.Event()
    stop = asyncio.Event()
    finished: list[str] = []

    async def handler(message: wonderq.Message) -> None:
        started.set()
        await finish.wait()
        for _ in range(50):  # loop steps enough for a worker that cancels on stop to do so
            await asyncio.sleep(0)
        finished.append(message.body)

    worker = asyncio.create_task(
        client.run_worker("jobs", handler, concurrency=1, wait=1, stop=stop, grace=None)
    )
    try:
        async with asyncio.timeout(T):
            await started.wait()
        stop.set()
        await client.ping()
        assert not worker.done()  # still waiting for the handler in flight
        finish.set()
        async with asyncio.timeout(T):
            await worker
    finally:
        worker.cancel()
    assert finished == ["a"]  # one finished; nothing new was taken after stop
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.acked, stats.ready, stats.leased) == (1, 2, 0)


async def test_handlers_past_the_grace_period_are_cancelled_and_released(
    client: wonderq.AsyncClient,
) -> None:
    await client.put("jobs", "stuck")
    started = asyncio.Event()
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = asyncio.create_task(client.run_worker("jobs", handler, wait=1, stop=stop, grace=0.1))
    try:
        async with asyncio.timeout(T):
            await started.wait()
            stop.set()
            await worker
    finally:
        worker.cancel()
    # released at once: the worker's last GET was cancelled first
    [again] = await fetch(client, "jobs", 1)
    assert (again.body, again.attempts) == ("stuck", 2)


async def test_a_handler_may_settle_its_message_itself(client: wonderq.AsyncClient) -> None:
    await client.put_many("jobs", ["ack-me", "nack-me"])
    stop = asyncio.Event()
    handled: list[str] = []

    async def handler(message: wonderq.Message) -> None:
        handled.append(message.body)
        if message.body == "ack-me":
            await message.ack()
        else:
            await message.nack(delay=60)
        if len(handled) == 2:
            stop.set()

    async with asyncio.timeout(T):
        await client.run_worker("jobs", handler, concurrency=2, wait=1, stop=stop)
    stats = (await client.stats("jobs")).queues["jobs"]
    assert (stats.acked, stats.nacked, stats.delayed) == (1, 1, 1)


async def test_consume_without_reconnect_raises_connection_lost(fake_server: Any) -> None:
    async def handler(conn: Any) -> None:
        await conn.request()
        conn.close()

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        messages = c.consume("jobs", wait=T, reconnect=False)
        async with contextlib.aclosing(messages), asyncio.timeout(T):
            with pytest.raises(wonderq.ConnectionLost):
                await anext(messages)


async def test_consume_with_reconnect_carries_on_after_a_lost_connection(
    fake_server: Any,
) -> None:
    # Connection 1 delivers "a", then drops while the consumer's next GET waits;
    # connection 2 (after the reconnect) delivers "a" again, as a broker would.
    connections = 0

    async def handler(conn: Any) -> None:
        nonlocal connections
        connections += 1
        number = connections
        get = await conn.request()
        assert get["op"] == "GET"
        attempts = 1 if number == 1 else 2
        conn.reply(get, messages=[{"id": "a", "queue": "jobs", "body": "a", "attempts": attempts}])
        if number == 1:
            assert (await conn.request())["op"] == "GET"  # waiting for a second message
            conn.close()
            return
        while True:
            request = await conn.request()
            if request["op"] != "GET":  # a GET waits (unanswered): no messages left
                conn.reply(request)

    async with (
        fake_server(handler) as port,
        await wonderq.connect("127.0.0.1", port, reconnect=True, reconnect_timeout=T) as c,
    ):
        messages = c.consume("jobs", concurrency=2, wait=T)
        async with contextlib.aclosing(messages), asyncio.timeout(T):
            first = await anext(messages)
            again = await anext(messages)  # its GET lost the connection; it carried on
            assert (first.attempts, again.id, again.attempts) == (1, "a", 2)
            with pytest.raises(wonderq.ConnectionLost):
                await first.ack()  # its lease went with the first connection
            await again.ack()
    assert connections == 2


async def test_consumers_refuse_settings_that_would_spin_or_hold_nothing(
    client: wonderq.AsyncClient,
) -> None:
    bad_settings: list[dict[str, Any]] = [{"concurrency": 0}, {"wait": 0}, {"lease": 0}]
    for bad in bad_settings:
        with pytest.raises(ValueError):
            client.consume("jobs", **bad)


async def test_a_huge_concurrency_asks_for_at_most_max_get_per_get(
    client: wonderq.AsyncClient,
) -> None:
    await client.put_many("jobs", list(range(1000)))
    await client.put_many("jobs", list(range(5)))
    messages = client.consume("jobs", concurrency=5000, wait=T)
    async with contextlib.aclosing(messages):
        first = await anext(messages)  # one GET of at most 1000, not a bad_request
        assert first.body == 0
        assert (await client.stats("jobs")).queues["jobs"].leased == 1000
