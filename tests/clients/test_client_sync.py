"""The blocking client: same API as the asyncio one (checked by signature), against a real broker.

The broker runs in the test's event loop; the blocking code runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import wonderq
from wonderq import Envelope, MessageState

R = TypeVar("R")
T = 10.0


async def in_thread(fn: Callable[[], R]) -> R:
    async with asyncio.timeout(T):
        return await asyncio.to_thread(fn)


def public_methods(cls: type) -> dict[str, Any]:
    """The public members of ``cls`` and of the classes it inherits from (``AsyncAdmin``...)."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):  # object's members are not the client's
        members.update((n, v) for n, v in vars(klass).items() if not n.startswith("_"))
    return members


def normalised(annotation: Any) -> str:
    text = str(annotation)
    for async_name, sync_name in (
        ("SyncMessage", "Message"),
        ("SyncHandler", "Handler"),
        ("AsyncClient", "Client"),
        ("asyncio.Event", "threading.Event"),
    ):
        text = text.replace(async_name, sync_name)
    # an async generator's send type is its last parameter; a generator also has a return type
    return re.sub(r"\bAsyncGenerator\[(.*), None\]$", r"Generator[\1, None, None]", text)


def assert_same_signature(
    async_fn: Callable[..., Any], sync_fn: Callable[..., Any], *, returns: bool = True
) -> None:
    a, s = inspect.signature(async_fn), inspect.signature(sync_fn)
    assert [
        (p.name, p.kind, p.default, normalised(p.annotation)) for p in a.parameters.values()
    ] == [(p.name, p.kind, p.default, normalised(p.annotation)) for p in s.parameters.values()], (
        async_fn.__name__
    )
    if returns:
        assert normalised(a.return_annotation) == normalised(s.return_annotation), async_fn.__name__


def test_sync_and_async_clients_have_the_same_methods_and_signatures() -> None:
    async_methods = public_methods(wonderq.AsyncClient)
    sync_methods = public_methods(wonderq.Client)
    assert set(async_methods) == set(sync_methods)
    for name, sync_member in sync_methods.items():
        async_member = async_methods[name]
        if isinstance(sync_member, property):
            assert isinstance(async_member, property), name
            continue
        assert_same_signature(async_member, sync_member)
        assert not inspect.iscoroutinefunction(sync_member), name
        if name != "consume":
            assert inspect.iscoroutinefunction(async_member), name
    assert_same_signature(wonderq.AsyncClient.__init__, wonderq.Client.__init__)
    # connect() gives a Connecting (await it, or async with it: an AsyncClient either way)
    assert_same_signature(wonderq.connect, wonderq.connect_sync, returns=False)
    assert inspect.signature(wonderq.connect).return_annotation == "Connecting"
    assert inspect.signature(wonderq.connect_sync).return_annotation == "Client"
    for name in ("ack", "nack", "touch"):
        assert_same_signature(getattr(wonderq.Message, name), getattr(wonderq.SyncMessage, name))
    assert hasattr(wonderq.Client, "__enter__") and hasattr(wonderq.AsyncClient, "__aenter__")


async def test_sync_client_runs_every_operation(broker: Any) -> None:
    def script() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.ping()
            msg_id = c.put("jobs", {"n": 1}, key="k", priority=-1, max_attempts=2)
            ids = c.put_many("jobs", ["b", Envelope("c", delay=60)])
            assert c.info(msg_id).key == "k"
            [first, second] = c.get("jobs", max=5, lease=30)
            assert (first.id, first.body, first.key, first.attempts) == (msg_id, {"n": 1}, "k", 1)
            assert second.id == ids[0]
            first.touch(lease=100)
            info = c.info(first.id)
            assert info.lease_left is not None and info.lease_left > 90
            assert second.nack() is False
            first.ack()
            assert first.settled and c.info(first.id).state == MessageState.ACKED
            [again] = c.get("jobs")
            c.touch(again.id, lease=50)
            assert c.nack(again.id, delay=30) is False
            assert c.info(again.id).state == MessageState.DELAYED
            assert c.ack_many(["nope"]).not_found == ["nope"]
            assert c.queues() == ["jobs"]
            assert c.stats("jobs").queues["jobs"].delayed == 2
            assert c.purge("jobs") == 2
            with pytest.raises(wonderq.NotFound):
                c.info("nope")
            with pytest.raises(wonderq.BadRequest):
                c.get("jobs", max=0)
            assert c.redrive("jobs").redriven == 0

    await in_thread(script)


async def test_sync_waiting_get_returns_when_a_message_arrives(broker: Any) -> None:
    def script() -> tuple[list[wonderq.SyncMessage], float]:
        # request_timeout is shorter than the wait: the GET's wait must extend it
        with wonderq.connect_sync("127.0.0.1", broker.port, request_timeout=0.1) as c:
            c.put("later", "hello", delay=0.3)  # cannot be delivered for 0.3 s
            started = time.monotonic()
            messages = c.get("later", wait=T)
            return messages, time.monotonic() - started

    messages, waited = await in_thread(script)
    assert [m.body for m in messages] == ["hello"]
    assert 0.25 <= waited < T


async def test_sync_consume_yields_and_releases_on_exit(broker: Any) -> None:
    def script() -> list[tuple[str, int]]:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.put_many("jobs", ["a", "b", "c", "d"])
            messages = c.consume("jobs", concurrency=2, wait=1)
            with contextlib.closing(messages):
                first = next(messages)
                first.ack()
                next(messages)  # "b", left unsettled
                third = next(messages)
                assert third.body == "c"
            # leaving released "b" and "c" (fetched, unsettled); "d" was never fetched
            return [(m.body, m.attempts) for m in c.get("jobs", max=10)]

    assert sorted(await in_thread(script)) == [("b", 2), ("c", 2), ("d", 1)]


async def test_sync_consume_refuses_to_take_more_than_concurrency(broker: Any) -> None:
    def script() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            c.put_many("jobs", ["a", "b"])
            messages = c.consume("jobs", concurrency=1, wait=1)
            with contextlib.closing(messages):
                next(messages)
                with pytest.raises(RuntimeError, match="settle a message"):
                    next(messages)

    await in_thread(script)


@pytest.mark.usefixtures("quick_stop")  # its peer never closes
async def test_sync_connection_lost_on_shutdown_and_no_hang(make_broker: Any) -> None:
    async with make_broker() as server:
        c = wonderq.connect_sync("127.0.0.1", server.port)
        await in_thread(c.ping)
        await server.close()
        with pytest.raises(wonderq.ConnectionLost):
            await in_thread(c.ping)
        with pytest.raises(wonderq.ConnectionLost, match="reconnect=False"):
            await in_thread(c.ping)
        c.close()


async def test_sync_request_timeout_keeps_the_connection(fake_server: Any) -> None:
    async def handler(conn: Any) -> None:
        slow = await conn.request()
        fast = await conn.request()
        conn.reply(slow)
        conn.reply(fast)
        await conn.reader.read()

    async with fake_server(handler) as port:
        c = wonderq.connect_sync("127.0.0.1", port, request_timeout=0.2)
        with pytest.raises(wonderq.RequestTimeout):
            await in_thread(c.ping)
        await in_thread(c.ping)
        c.close()


async def test_sync_waiting_get_that_times_out_is_cancelled_with_the_next_call(
    fake_server: Any,
) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(conn: Any) -> None:
        get = await conn.request()  # not answered within the client's timeout
        seen.append(get)
        cancel = await conn.request()
        seen.append(cancel)
        conn.reply(get, messages=[])
        conn.reply(cancel, cancelled=1)
        ping = await conn.request()
        seen.append(ping)
        conn.reply(ping)
        await conn.reader.read()

    async with fake_server(handler) as port:
        c = wonderq.connect_sync("127.0.0.1", port, request_timeout=0.1)
        with pytest.raises(wonderq.RequestTimeout):
            await in_thread(lambda: c.get("q", wait=0.1))
        await in_thread(c.ping)
        c.close()
    assert [r["op"] for r in seen] == ["GET", "CANCEL", "PING"]
    assert seen[1]["get"] == seen[0]["rid"]


async def test_sync_reconnect_and_token(fake_server: Any) -> None:
    firsts: list[dict[str, Any]] = []

    async def handler(conn: Any) -> None:
        auth = await conn.request()
        firsts.append(auth)
        conn.reply(auth)
        request = await conn.request()
        if len(firsts) == 1:
            conn.close()
            return
        conn.reply(request)
        await conn.reader.read()

    async with fake_server(handler) as port:

        def script() -> None:
            with wonderq.connect_sync("127.0.0.1", port, token="t", reconnect=True) as c:
                with pytest.raises(wonderq.ConnectionLost):
                    c.ping()
                c.ping()

        await in_thread(script)
    assert [f["op"] for f in firsts] == ["AUTH", "AUTH"]


async def test_sync_client_is_safe_to_share_between_threads(broker: Any) -> None:
    def script() -> set[str]:
        ids: set[str] = set()
        lock = threading.Lock()
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:

            def produce(n: int) -> None:
                for i in range(50):
                    msg_id = c.put("shared", f"{n}-{i}")
                    with lock:
                        ids.add(msg_id)

            threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(T)
            assert c.stats("shared").queues["shared"].ready == 200
        return ids

    assert len(await in_thread(script)) == 200
