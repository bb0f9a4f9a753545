"""run_worker and consume reconnect by default: after a network cut or a broker restart they
carry on, with backoff, logging each attempt; the leases of the lost connection come back to
the queue; bounded by reconnect_timeout. Real brokers, a real relay that cuts connections."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import wonderq

T = 10.0  # seconds any single wait in these tests may take


async def test_run_worker_reconnects_after_a_cut_and_gets_the_released_message_again(
    broker: Any, make_proxy: Any, log_watch: Any
) -> None:
    seen: list[int] = []
    first_started = asyncio.Event()
    let_first_finish = asyncio.Event()
    again = asyncio.Event()
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        seen.append(message.attempts)
        if message.attempts == 1:
            first_started.set()
            await let_first_finish.wait()  # its connection is cut meanwhile: its ack fails
        else:
            again.set()
            stop.set()

    async with (
        make_proxy(broker.port) as proxy,
        wonderq.connect("127.0.0.1", proxy.port) as worker_client,
        wonderq.connect("127.0.0.1", broker.port) as producer,
    ):
        msg_id = await producer.put("jobs", "work")
        worker = asyncio.create_task(
            worker_client.run_worker("jobs", handler, concurrency=1, wait=T, stop=stop)
        )
        try:
            async with asyncio.timeout(T):
                await first_started.wait()
                proxy.cut()  # the broker sees the connection go: it releases the lease
                let_first_finish.set()
                await again.wait()
                await worker
        finally:
            worker.cancel()
        stats = (await producer.stats("jobs")).queues["jobs"]
        assert (stats.acked, stats.released_on_disconnect, stats.ready) == (1, 1, 0)
        assert (await producer.info(msg_id)).state == wonderq.MessageState.ACKED
    assert seen == [1, 2]
    assert proxy.accepted == 2  # one reconnect
    assert log_watch.messages(f"could not ACK message {msg_id}")  # the first handler's, truthfully
    assert log_watch.messages(
        f"lost the connection to 127.0.0.1:{proxy.port} while consuming 'jobs'"
    )
    [reconnected] = log_watch.messages("reconnected to")
    assert reconnected == f"reconnected to 127.0.0.1:{proxy.port} (attempt 1)"
    assert all(r.levelname == "WARNING" for r in log_watch.records if "connect" in r.getMessage())


async def test_run_worker_rides_out_a_broker_restart_with_backoff(
    make_broker: Any, log_watch: Any
) -> None:
    handled: list[str] = []
    got = {name: asyncio.Event() for name in ("before", "after")}
    stop = asyncio.Event()

    async def handler(message: wonderq.Message) -> None:
        handled.append(message.body)
        await message.ack()
        got[message.body].set()

    async with make_broker() as first:
        port = first.port
        client = await wonderq.connect("127.0.0.1", port)
        worker = asyncio.create_task(client.run_worker("jobs", handler, wait=T, stop=stop))
        try:
            async with wonderq.connect("127.0.0.1", port) as producer:
                await producer.put("jobs", "before")
            async with asyncio.timeout(T):
                await got["before"].wait()
            await first.close()  # a graceful stop, as for a deploy
            refused = await log_watch.wait_for(
                f"reconnecting to 127.0.0.1:{port}: attempt 2 failed"
            )
            assert "connection refused: no broker is running" in refused.getMessage()
            assert "trying again in 0.1 s" in refused.getMessage()  # 0.05 s, then doubling
            async with make_broker(port=port) as second:
                assert second.port == port
                async with wonderq.connect("127.0.0.1", second.port) as producer:
                    await producer.put("jobs", "after")
                async with asyncio.timeout(T):
                    await got["after"].wait()
                stop.set()
                async with asyncio.timeout(T):
                    await worker
        finally:
            worker.cancel()
            await client.close()
    assert handled == ["before", "after"]
    assert log_watch.messages(f"reconnected to 127.0.0.1:{port}")
    assert not worker.cancelled() and worker.exception() is None


async def test_a_worker_gives_up_once_reconnect_timeout_has_passed(make_broker: Any) -> None:
    async with make_broker() as server:
        client = await wonderq.connect("127.0.0.1", server.port, reconnect_timeout=0.5)
        worker = asyncio.create_task(client.run_worker("jobs", lambda m: asyncio.sleep(0), wait=T))
        try:
            await client.ping()
            await server.close()
            async with asyncio.timeout(T):
                with pytest.raises(wonderq.ConnectFailed, match="gave up reconnecting after"):
                    await worker
        finally:
            worker.cancel()
            await client.close()


async def test_a_consumer_on_a_reconnecting_client_gives_up_once_not_twice(
    make_broker: Any, log_watch: Any
) -> None:
    # The client's own reconnect gives up first; the consumer must not start a second outage.
    async with make_broker() as server:
        client = await wonderq.connect(
            "127.0.0.1", server.port, reconnect=True, reconnect_timeout=0.3
        )
        messages = client.consume("jobs", wait=T)
        try:
            await client.ping()
            await server.close()
            async with contextlib.aclosing(messages), asyncio.timeout(T):
                with pytest.raises(wonderq.ConnectFailed, match="gave up reconnecting"):
                    await anext(messages)
        finally:
            await client.close()
    assert len(log_watch.messages("attempt 1 failed")) == 1, log_watch.messages()


async def test_run_worker_without_reconnect_raises_connection_lost(
    broker: Any, make_proxy: Any
) -> None:
    async with make_proxy(broker.port) as proxy, wonderq.connect("127.0.0.1", proxy.port) as c:
        worker = asyncio.create_task(
            c.run_worker("jobs", lambda m: asyncio.sleep(0), wait=T, reconnect=False)
        )
        await c.ping()
        proxy.cut()
        async with asyncio.timeout(T):
            with pytest.raises(wonderq.ConnectionLost):
                await worker
    assert proxy.accepted == 1


async def test_consume_reconnects_by_default(broker: Any, make_proxy: Any, log_watch: Any) -> None:
    async with (
        make_proxy(broker.port) as proxy,
        wonderq.connect("127.0.0.1", proxy.port) as consumer_client,
        wonderq.connect("127.0.0.1", broker.port) as producer,
    ):
        await producer.put("jobs", "one")
        messages = consumer_client.consume("jobs", wait=T)
        async with contextlib.aclosing(messages), asyncio.timeout(T):
            first = await anext(messages)
            await first.ack()
            second = asyncio.create_task(anext(messages))  # its GET waits on the broker
            proxy.cut()
            await log_watch.wait_for("lost the connection")
            await producer.put("jobs", "two")
            message = await second
            assert message.body == "two"
            await message.ack()
        assert proxy.accepted == 2


async def test_the_blocking_consume_reconnects_by_default(
    broker: Any, make_proxy: Any, log_watch: Any
) -> None:
    async with make_proxy(broker.port) as proxy:
        lost = asyncio.Event()
        loop = asyncio.get_running_loop()

        def script() -> list[str]:
            bodies: list[str] = []
            with wonderq.connect_sync("127.0.0.1", proxy.port) as c:
                c.put("jobs", "one")
                for message in c.consume("jobs", wait=T):
                    bodies.append(message.body)
                    message.ack()
                    if len(bodies) == 1:
                        loop.call_soon_threadsafe(lost.set)  # cut now, while the next GET waits
                    else:
                        break
            return bodies

        consumer = asyncio.create_task(asyncio.to_thread(script))
        async with asyncio.timeout(T):
            await lost.wait()
            proxy.cut()
            await log_watch.wait_for("lost the connection")
            async with wonderq.connect("127.0.0.1", broker.port) as producer:
                await producer.put("jobs", "two")
            assert await consumer == ["one", "two"]
        assert proxy.accepted == 2


async def test_a_reconnecting_producer_moves_on_once_the_broker_says_it_is_shutting_down(
    make_broker: Any, log_watch: Any
) -> None:
    async with make_broker() as first:
        port = first.port
        async with wonderq.connect("127.0.0.1", port, reconnect=True) as producer:
            await producer.put("jobs", "before")
            closing = asyncio.create_task(first.close())
            await asyncio.sleep(0)  # one step: the broker now answers shutting_down
            with pytest.raises(wonderq.ShuttingDown):
                await producer.put("jobs", "during")  # not applied, and it says so
            async with make_broker(port=port) as second:
                assert second.port == port
                # the old connection is still open (draining), but the next call goes to a
                # new one instead of getting shutting_down again
                await producer.put("jobs", "after")
                async with wonderq.connect("127.0.0.1", port) as observer:
                    [message] = await observer.get("jobs")
                assert message.body == "after"
            async with asyncio.timeout(T):
                await closing
    assert log_watch.messages(f"reconnected to 127.0.0.1:{port}")
