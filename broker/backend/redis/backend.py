"""The Redis backend: queue state shared by any number of nodes in Redis.

Owns: the ``Backend`` interface over Redis: connections' owner tokens
(``<incarnation>/<n>/<peer>``: a lease owner is an opaque string to the
library, so an HTTP receipt can be one too), turning each batch of requests
into ops (``handlers.py``) that ``Calls`` coalesces into one library call per
tag and one pipeline per loop iteration, this node's waiting GETs (their
timeouts and queue ticks in ``Timers``; their deliveries arrive in a call's
reply or are collected when the node's channel says so), the node's
membership (``Node``), and the graceful stop.
Must never: keep queue state of its own (Redis holds it; the node only
remembers its connections and their waits), block, or poll Redis for messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable, Sequence
from itertools import count
from typing import Any, Final

from broker.backend.base import Replies, ReplySink, StartError, StatsProvider
from broker.backend.memory import log_events
from broker.backend.redis import library, wire
from broker.backend.redis.calls import Calls, Op, Reply
from broker.backend.redis.events import Listener
from broker.backend.redis.node import Node, node_info
from broker.backend.redis.target import Target, client, plain_client
from broker.backend.redis.timers import OwnerWaits, Timers, Wait
from broker.config import Config
from broker.errors import ShuttingDown, Unavailable, WonderQError
from broker.histogram import WAIT_BOUNDS_S, Histogram
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.names import DEAD_SUFFIX

log = logging.getLogger("wonderq.redis")

_NOT_APPLIED: Final = "the server is shutting down; the request was not applied"
PENDING: Final = object()  # a handler's reply comes later, through its slot


class Owner:
    """The lease owner of one connection: its token, and what this node knows of it."""

    __slots__ = ("leased", "sink", "tags", "token", "waits")

    def __init__(self, token: str, sink: ReplySink | None) -> None:
        self.token = token
        self.sink = sink
        self.tags: set[str] = set()  # tags where it may hold leases or waits
        self.leased: set[str] = set()  # ids it was given and has not acked or nacked
        self.waits = OwnerWaits()  # its waiting GETs by waiter id (and by rid)

    @property
    def peer(self) -> str:
        return str(getattr(self.sink, "peer", "?"))


class Batch:
    """The replies of one ``execute``: filled now or later, resolved once all are in."""

    __slots__ = ("future", "left", "replies")

    def __init__(self, n: int) -> None:
        self.replies: Replies = [None] * n
        self.left = 0
        self.future: asyncio.Future[Replies] | None = None

    def fill(self, i: int, reply: rp.Reply | None) -> None:
        self.replies[i] = reply
        self.left -= 1
        if self.left == 0 and self.future is not None and not self.future.done():
            self.future.set_result(self.replies)


class Slot:
    __slots__ = ("batch", "i")

    def __init__(self, batch: Batch, i: int) -> None:
        self.batch = batch
        self.i = i

    def fill(self, reply: rp.Reply | None) -> None:
        self.batch.fill(self.i, reply)


def default_node_id(config: Config) -> str:
    host = socket.gethostname().split(".")[0] or "node"
    return f"{host}-{config.port}-{secrets.token_hex(2)}"


class RedisBackend:
    def __init__(
        self,
        config: Config,
        target: Target,
        *,
        node_id: str | None = None,
        clock: Callable[[], float] | None = None,
        ttl_s: float = 3.0,
        timeout_s: float = 1.0,
    ) -> None:
        from broker.backend.redis.handlers import Handlers

        self.config = config
        self.target = target
        self.timeout_s = timeout_s
        self._test_clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = client(target, timeout_s)
        prefix = library.prefix(test_clock=clock is not None)
        self._function = prefix + "_call"
        self._node_function = prefix + "_node"
        self._defaults = [
            config.lease_s * 1000,
            config.max_attempts,
            config.max_queue_length,
            config.acked_history,
            config.dedup_window_s,
            config.max_dedup_ids,
            config.forget_after_s * 1000,  # an idle queue is forgotten this long after
        ]
        self.calls = Calls(
            self._client,
            self._function,
            self._node_function,
            self._head,
            self._on_reply,
            self._on_fenced,
            self._load_library,
            timeout_s,
        )
        self.node = Node(
            node_id or default_node_id(config),
            ttl_s,
            self._node_call,
            self._reap,
            self._info,
            self._cut_off,
            self.now,
        )
        self.timers = Timers(self.now, clock is None, self._wait_due, self._tick_due)
        self.listener = Listener(self._pubsub_client, self._on_wake, self._resync, timeout_s)
        self.handlers = Handlers(self)
        self._owners: dict[Owner, None] = {}
        self._owner_n = count(1)
        self._wid_n = count(1)
        self.waits: dict[str, Wait] = {}  # this node's waiting GETs by waiter id
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats_providers: list[StatsProvider] = []
        self._started_at = 0.0
        self._redis_offset_ms = 0.0  # Redis time minus this node's clock, from the last reply
        self._draining = False
        self.known_tags: set[str] = set()  # tags registered for this incarnation (reaping)
        self.known_queues: set[str] = set()  # queue names registered (QUEUES, STATS)
        self.get_wait = Histogram(WAIT_BOUNDS_S)

    # -------------------------------------------------------------- lifecycle

    def now(self) -> float:
        if self._test_clock is not None:
            return self._test_clock()
        assert self._loop is not None, "backend not started"
        return self._loop.time()

    async def start(self) -> None:
        from redis.exceptions import RedisError

        self._loop = asyncio.get_running_loop()
        self._started_at = self.now()
        where = self.target.describe()
        try:
            await self._load_library()
            self._spawn(self.listener.run())
            self.listener.follow(self._channel())
            async with asyncio.timeout(max(5.0, 5 * self.timeout_s)):
                await self.listener.ready.wait()
            await self.node.join()
        except (RedisError, OSError, TimeoutError, StartError) as exc:
            for task in list(self._tasks):
                task.cancel()
            await self._client.aclose()
            if isinstance(exc, StartError):
                raise
            why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            raise StartError(f"cannot use redis at {where}: {why}") from None
        self._spawn(self.node.run())
        log.info("serving queues kept in redis at %s as node %s", where, self.node.id)

    async def _load_library(self) -> None:
        """Load the library on every master (a Redis Cluster routes by key; a Function
        must exist on each)."""
        source = library.source(test_clock=self._test_clock is not None)
        if self.target.cluster:
            await self._client.function_load(source, replace=True, target_nodes="primaries")
        else:
            await self._client.function_load(source, replace=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("redis backend task failed", exc_info=task.exception())

    async def drain(self) -> None:
        self._draining = True
        for wait in list(self.waits.values()):
            self._end_wait(wait, send=True)
        await self.calls.wait_idle()

    async def stop(self) -> None:
        if not self._draining:
            await self.drain()
        for owner in list(self._owners):
            self.close(owner)
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                await self.calls.wait_idle()
                await self.node.leave()
        except Exception as exc:  # a stop always completes
            log.warning("could not leave the cluster cleanly: %s", exc)
        self.node.leaving = True  # also when leave() timed out above
        self.timers.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:  # bounded: a task that swallowed its cancel must not hang the stop
            _, stuck = await asyncio.wait(list(self._tasks), timeout=2 * self.timeout_s)
            for task in stuck:
                log.warning("redis backend task %s did not stop; left behind", task.get_name())
        await self._client.aclose()

    def add_stats_provider(self, provider: StatsProvider) -> None:
        self._stats_providers.append(provider)

    def server_figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for provider in self._stats_providers:
            out.update(provider())
        return out

    # ------------------------------------------------------------ connections

    def open(self, sink: ReplySink) -> object:
        owner = Owner(self._token(next(self._owner_n), getattr(sink, "peer", "?")), sink)
        self._owners[owner] = None
        return owner

    def _token(self, n: int, peer: str) -> str:
        return f"{self.node.inc}/{n}/{peer}"

    def close(self, owner: object) -> None:
        if not isinstance(owner, Owner):
            return
        self._owners.pop(owner, None)
        by_tag: dict[str, list[str]] = {tag: [] for tag in owner.tags}
        for wait in owner.waits.values():
            wait.waiting = False
            self.waits.pop(wait.wid, None)
            by_tag.setdefault(wait.tag, []).append(wait.wid)
        owner.waits.clear()
        for tag, wids in by_tag.items():
            self._release(owner, tag, wids, attempt=0)

    def _release(self, owner: Owner, tag: str, wids: list[str], attempt: int) -> None:
        """Release a closed connection's leases and waits on ``tag``; retried while Redis
        is unreachable (after a cut-off, the old incarnation is reaped whole instead)."""

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if error is None:
                _log_released(owner, result[1])
                return
            if not owner.token.startswith(self.node.inc + "/") or self._loop is None:
                return
            if attempt % 10 == 0:
                log.warning("could not release the leases of %s: %s", owner.peer, error.message)
            self._loop.call_later(
                min(1.0, 0.1 * (attempt + 1)), self._release, owner, tag, wids, attempt + 1
            )

        self.calls.submit(tag, Op(["close", owner.token, wids], [], done))

    def writable(self, owner: object) -> None:
        """(Waiting GETs are served in Redis, by whichever node's call makes a message
        deliverable: this backend does not hold them back for a full write buffer.)"""

    def holds(self, owner: object) -> bool:
        return isinstance(owner, Owner) and bool(owner.leased or owner.waits)

    def owners(self) -> list[Owner]:
        return list(self._owners)

    # -------------------------------------------------------------- execution

    def execute(
        self, owner: object, requests: Sequence[rq.AnyRequest]
    ) -> Replies | asyncio.Future[Replies]:
        if self._draining:
            raise ShuttingDown(_NOT_APPLIED)
        if not self.node.serving:
            raise Unavailable("this node is not connected to redis; the request was not applied")
        if not isinstance(owner, Owner):
            owner = Owner(self._token(0, "internal"), None)
        batch = Batch(len(requests))
        handle = self.handlers.handle
        for i, request in enumerate(requests):
            try:
                reply = handle(owner, request, Slot(batch, i))
            except WonderQError as exc:
                reply = rp.error_reply(exc)
            if reply is PENDING:
                batch.left += 1
            else:
                batch.replies[i] = reply
        if batch.left == 0:
            return batch.replies
        batch.future = asyncio.get_running_loop().create_future()
        return batch.future

    def _head(self) -> list[Any]:
        test_now = self._test_clock() * 1000 if self._test_clock is not None else False
        return [self.node.inc, test_now, self._defaults]

    def call(
        self,
        tag: str,
        args: list[Any],
        done: Callable[[Any, list[bytes], WonderQError | None], None],
        bodies: list[bytes] | None = None,
        body_at: int = -1,
    ) -> None:
        self.calls.submit(tag, Op(args, bodies or [], done, body_at))

    async def acall(self, tag: str, args: list[Any]) -> tuple[Any, list[bytes]]:
        """One op, awaited: its result and the call's bodies (raises its error)."""
        fut: asyncio.Future[tuple[Any, list[bytes]]] = asyncio.get_running_loop().create_future()

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result((result, bodies))

        self.calls.submit(tag, Op(args, [], done))
        return await fut

    async def anode(self, args: list[Any]) -> Any:
        """One op of the node registry, in the calls' pipeline (raises its error)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if not fut.done():
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(result)

        self.calls.submit_node(Op(args, [], done))
        return await fut

    def register(self, tag: str, queues: Sequence[str] = (), lease: bool = True) -> None:
        """Before this incarnation's first lease or wait on ``tag`` (reapers must find it),
        and before a queue is first created from this node (QUEUES lists it)."""
        if lease and tag not in self.known_tags:
            self.known_tags.add(tag)
            self.calls.submit_node(Op(["tags", self.node.inc, [tag]], [], _ignore))
        new = [q for q in queues if q not in self.known_queues]
        if new:
            self.known_queues.update(new)
            names = sorted({n for q in new for n in (q, q + DEAD_SUFFIX)})
            self.calls.submit_node(Op(["queues", names], [], _ignore))

    # ------------------------------------------------------------ replies in

    def _on_reply(self, reply: Reply) -> None:
        self._redis_offset_ms = reply.now_ms - self.now() * 1000
        for queue, at_ms in reply.wakes:
            self.tick_at(reply.tag, queue, at_ms)
        if reply.deliveries:
            self.take_deliveries(reply.tag, reply.deliveries, reply.bodies)
        if reply.events:
            log_events({(q, name): n for q, name, n in reply.events})

    def tick_at(self, tag: str, queue: str, at_ms: float) -> None:
        """Ask Redis to fire ``queue``'s due items at Redis time ``at_ms`` (if we wait there)."""
        at = (at_ms - self._redis_offset_ms) / 1000 + 0.001
        self.timers.add_tick(tag, queue, at)

    def take_deliveries(self, tag: str, deliveries: list[Any], bodies: list[bytes]) -> None:
        for wid, msgs in deliveries:
            wait = self.waits.pop(wid, None)
            if wait is None:  # its connection closed: the close op releases the leases
                continue
            self._answer(wait, [wire.delivered(tag, m, bodies) for m in msgs])

    def _answer(self, wait: Wait, msgs: list[rp.Delivered]) -> None:
        wait.waiting = False
        self.waits.pop(wait.wid, None)
        owner = wait.owner
        owner.waits.pop(wait.wid, None)
        for m in msgs:
            owner.leased.add(m.id)
        self.get_wait.observe(max(0.0, self.now() - wait.since))
        reply = rp.GetReply(messages=msgs) if msgs else rp.EMPTY_GET
        if owner.sink is not None:
            owner.sink.deliver(wait.request, reply)

    def new_wait(self, owner: Owner, request: rq.Get, tag: str) -> Wait:
        now = self.now()
        wid = f"{self.node.inc}.{next(self._wid_n)}"
        wait = Wait(wid, owner, request, tag, now, now + request.wait)
        self.waits[wid] = wait
        owner.waits[wid] = wait
        return wait

    def _end_wait(self, wait: Wait, send: bool) -> None:
        """End a waiting GET now, empty (a stop); Redis forgets it with an unwait op."""
        if not wait.waiting:
            return
        self._answer(wait, [])
        if send:  # if it was served meanwhile, its connection's close releases those leases
            self.calls.submit(wait.tag, Op(["unwait", wait.queue, wait.wid], [], _ignore))

    # ---------------------------------------------------------------- timers

    def _wait_due(self, wait: Wait) -> None:
        self.handlers.expire_wait(wait)

    def _tick_due(self, tag: str, queue: str) -> None:
        if any(w.tag == tag and w.queue == queue for w in self.waits.values()):
            self.calls.submit(tag, Op(["tick", queue], [], _ignore))

    def fire_due(self) -> None:
        """Run the node's due deadlines now (with a test clock, after moving it)."""
        self.timers.fire_due()

    # ----------------------------------------------------------- the channel

    def _channel(self) -> str:
        return f"wq:wake:{self.node.inc}"

    def _pubsub_client(self, attempt: int) -> Any:
        hosts = list(self.target.hosts)
        if self.target.cluster:
            with contextlib.suppress(Exception):  # topology unknown yet: the URL's hosts
                hosts = [(n.host, n.port) for n in self._client.get_nodes()] or hosts
        host, port = hosts[attempt % len(hosts)]
        return plain_client(host, port, self.target, self.timeout_s)

    def _on_wake(self, data: str) -> None:
        kind, _, rest = data.partition(" ")
        prefix, _, rest = rest.partition(" ")
        tag = prefix[4:-1]  # wq:{tag}
        if kind == "d":
            self.handlers.collect(tag)
        elif kind == "t":
            at, _, queue = rest.partition(" ")
            self.tick_at(tag, queue, float(at))

    def _resync(self) -> None:
        """After (re)subscribing: collect what may have been missed, and tick every queue
        this node waits on."""
        waited = {(w.tag, w.queue) for w in self.waits.values()}
        for tag in {t for t, _ in waited}:
            self.handlers.collect(tag)
        for tag, queue in waited:
            self.calls.submit(tag, Op(["tick", queue], [], _ignore))

    # ------------------------------------------------------------ membership

    async def _node_call(self, args: list[Any]) -> Any:
        test_now = self._test_clock() * 1000 if self._test_clock is not None else False
        async with asyncio.timeout(self.timeout_s):
            raw = await self._client.fcall(
                self._node_function, 1, wire.NODES_KEY, wire.encode([*args, test_now])
            )
        return wire.decode(raw)

    async def _reap(self, dead: str, tags: list[str]) -> None:
        for tag in tags:
            await self.acall(tag, ["reap", dead])

    def _info(self) -> str:
        figures = self.server_figures()
        return node_info(
            self.node.id,
            f"{self.config.host}:{figures.get('port', self.config.port)}",
            int(figures.get("connections", len(self._owners))),
            self._started_at,
        )

    def _on_fenced(self) -> None:
        self.node.cut_off("redis refused its calls: another node reaped it")

    def _cut_off(self, old_inc: str) -> None:
        """Close every client connection (their leases are reaped with the incarnation)."""
        for wait in list(self.waits.values()):
            wait.waiting = False
        self.waits.clear()
        self.known_tags.clear()
        self.listener.follow(self._channel())
        for owner in list(self._owners):
            owner.waits.clear()
            owner.tags.clear()  # nothing to release: the old incarnation is reaped whole
            close = getattr(owner.sink, "close", None)
            if close is not None:
                close()


def _ignore(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
    if error is not None:
        log.debug("redis op failed: %s", error.message)


def _log_released(owner: Owner, n: int) -> None:
    if n:
        log.info(
            "%d lease(s) released: %s disconnected",
            n,
            owner.peer,
            extra={"event": "released_on_disconnect", "peer": owner.peer, "count": n},
        )
