"""The Redis backend: queue state shared by any number of nodes in Redis.

Owns: the ``Backend`` interface over Redis: connections' owner tokens
(``<incarnation>/<n>/<peer>``: a lease owner is an opaque string to the
library, so an HTTP receipt can be one too), turning each batch of requests
into ops (``handlers.py``) that ``Calls`` coalesces into one library call per
tag and one pipeline per loop iteration, wiring the parts together (this
node's waiting GETs in ``Waits``, its channel in ``Listener``, its membership
in ``Node``), and the graceful stop.
Must never: keep queue state of its own (Redis holds it; the node only
remembers its connections and their waits), block, or poll Redis for messages.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import count
from typing import Any, Final

from redis.exceptions import ClusterDownError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.backend.base import Replies, ReplySink, StartError, StatsProvider
from broker.backend.memory import log_events
from broker.backend.redis import library, wire
from broker.backend.redis.calls import Calls, Op, Reply, ignore
from broker.backend.redis.events import Listener
from broker.backend.redis.node import Node, node_info
from broker.backend.redis.owners import Batch, Owner, Slot
from broker.backend.redis.shards import Shards
from broker.backend.redis.target import Target, plain_client
from broker.backend.redis.waits import Waits
from broker.config import Config
from broker.errors import ShuttingDown, Unavailable, WonderQError
from broker.histogram import Histogram
from broker.protocol import replies as rp
from broker.protocol import requests as rq

log = logging.getLogger("wonderq.redis")

_NOT_APPLIED: Final = "the server is shutting down; the request was not applied"
PENDING: Final = object()  # a handler's reply comes later, through its slot


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
        self.shards = Shards(target, timeout_s)
        self._defaults = wire.defaults(config)
        self.calls = self._calls()
        self.node = Node(
            node_id or default_node_id(config),
            ttl_s,
            self._node_call,
            self._reap,
            self._info,
            self._cut_off,
            self.now,
        )
        self.waits = Waits(self, loop_timers=clock is None)
        self.listener = Listener(
            self._pubsub_client, self.waits.on_wake, self.waits.resync, timeout_s
        )
        self.handlers = Handlers(self)
        self._owners: dict[Owner, None] = {}
        self._owner_n = count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats_providers: list[StatsProvider] = []
        self._started_at = 0.0
        self.started_wall = 0.0  # wall clock at start: tells one run from the next
        self.redis_offset_ms = 0.0  # Redis time minus this node's clock, from the last reply
        self._draining = False
        self.known_tags: set[str] = set()  # tags registered for this incarnation (reaping)
        self._unregistered: set[str] = set()  # names whose registration failed: sent again

    def _calls(self) -> Calls:
        prefix = library.prefix(test_clock=self._test_clock is not None)
        return Calls(
            self.shards,
            prefix + "_call",
            prefix + "_node",
            self._head,
            self._on_reply,
            self._on_created,
            self._on_fenced,
            self._load_library,
            self.timeout_s,
        )

    @property
    def get_wait(self) -> Histogram:
        """How long GETs waited (the metrics endpoint reads it)."""
        return self.waits.get_wait

    # -------------------------------------------------------------- lifecycle

    def now(self) -> float:
        if self._test_clock is not None:
            return self._test_clock()
        assert self._loop is not None, "backend not started"
        return self._loop.time()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started_at = self.now()
        self.started_wall = round(time.time(), 3)
        where = self.target.describe()
        try:
            async with asyncio.timeout(max(5.0, 5 * self.timeout_s)):
                await self._once_cluster_is_up(self._connect)
            self.spawn(self.listener.run())
            self.listener.follow(self._channel())
            async with asyncio.timeout(max(5.0, 5 * self.timeout_s)):
                await self.listener.ready.wait()
                await self._once_cluster_is_up(self.node.join)
        except (RedisError, OSError, TimeoutError, StartError) as exc:
            for task in list(self._tasks):
                task.cancel()
            await self.shards.close()
            if isinstance(exc, StartError):
                raise
            why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            raise StartError(f"cannot use redis at {where}: {why}") from None
        self.spawn(self.node.run())
        log.info("serving queues kept in redis at %s as node %s", where, self.node.id)

    async def _connect(self) -> None:
        """Read the slot map and load the library."""
        await self.shards.load()
        await self._load_library()

    async def _once_cluster_is_up(self, step: Callable[[], Awaitable[None]]) -> None:
        """``step()``; while a cluster answers CLUSTERDOWN or one of its masters is gone
        (just created, or mid-failover), again every 0.2 s with a fresh slot map: a node
        started with its cluster, or during a failover, waits for it (the caller bounds
        the time; a single Redis that does not answer fails at once)."""
        while True:
            try:
                await step()
                return
            except (ClusterDownError, RedisConnectionError) as exc:
                if not self.target.cluster:
                    raise
                log.info("waiting for the redis cluster: %s", exc)
                await asyncio.sleep(0.2)

    async def _load_library(self) -> None:
        """Load the library on every master (a Redis Cluster routes by key; a Function
        must exist on each, and its replicas get it from it)."""
        source = library.source(test_clock=self._test_clock is not None)
        masters = self.shards.masters()
        if not masters:
            raise StartError(f"no master serves slots at {self.target.describe()}")
        await asyncio.gather(
            *(self.shards.client(m).function_load(source, replace=True) for m in masters)
        )

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("redis backend task failed", exc_info=task.exception())

    async def drain(self) -> None:
        self._draining = True
        for wait in list(self.waits.by_wid.values()):
            self.waits.end(wait)
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
        self.waits.timers.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:  # bounded: a task that swallowed its cancel must not hang the stop
            _, stuck = await asyncio.wait(list(self._tasks), timeout=2 * self.timeout_s)
            for task in stuck:
                log.warning("redis backend task %s did not stop; left behind", task.get_name())
        await self.shards.close()

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
            self.waits.by_wid.pop(wait.wid, None)
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
                batch.open[i] = 1
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
        return await self.call_future(tag, args)

    def call_future(self, tag: str, args: list[Any]) -> asyncio.Future[tuple[Any, list[bytes]]]:
        """One op, submitted now: a future of its result and bodies (or its error). Many of
        them gathered cost no task each (STATS asks every queue: a task per queue was
        most of its cost, and far more under asyncio's debug mode)."""
        fut: asyncio.Future[tuple[Any, list[bytes]]] = asyncio.get_running_loop().create_future()

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result((result, bodies))

        self.calls.submit(tag, Op(args, [], done))
        return fut

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

    def register(self, tag: str) -> None:
        """Before this incarnation's first lease or wait on ``tag`` (reapers must find it)."""
        if tag not in self.known_tags:
            self.known_tags.add(tag)
            self.calls.submit_node(Op(["tags", self.node.inc, [tag]], [], ignore))

    def register_names(self, queues: list[str]) -> None:
        """Name queues in the registry again (one whose naming was lost); no wait."""
        self.calls.submit_node(Op(["queues", sorted(queues)], [], ignore))

    def _on_created(self, queues: list[str], answer: Callable[[], None]) -> None:
        """A call made these queues: their names go to the registry (QUEUES and STATS list
        them), and only then are the call's ops answered, so a PUT answered ok is listed
        even if Redis restarts right after. A queue made again after it was forgotten is
        named again: no node remembers which names it registered. A registration that
        fails (Redis lost meanwhile: the call's writes were made) goes again with the
        next one; STATS of a queue by name finds it either way."""
        names = sorted({*queues, *self._unregistered})
        self._unregistered.clear()

        def done(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
            if error is not None:
                log.warning("could not register queue names %s: %s", names, error.message)
                self._unregistered.update(names)
            answer()

        self.calls.submit_node(Op(["queues", names], [], done))

    # ------------------------------------------------------------ replies in

    def _on_reply(self, reply: Reply) -> None:
        self.redis_offset_ms = reply.now_ms - self.now() * 1000
        for queue, at_ms in reply.wakes:
            self.waits.tick_at(reply.tag, queue, at_ms)
        if reply.deliveries:
            self.waits.take_deliveries(reply.tag, reply.deliveries, reply.bodies, reply.now_ms)
        if reply.events:
            log_events({(q, name): n for q, name, n in reply.events})

    def redis_now_ms(self) -> float:
        """Redis's time now, as this node estimates it from its last reply."""
        return self.now() * 1000 + self.redis_offset_ms

    def fire_due(self) -> None:
        """Run the node's due deadlines now (with a test clock, after moving it)."""
        self.waits.timers.fire_due()

    # ----------------------------------------------------------- the channel

    def _channel(self) -> str:
        return f"wq:wake:{self.node.inc}"

    def _pubsub_client(self, attempt: int) -> Any:
        """A client to subscribe on: any server (PUBLISH reaches every server of a
        cluster), the next one after a link broke."""
        servers = self.shards.servers()
        host, _, port = servers[attempt % len(servers)].rpartition(":")
        return plain_client(host, int(port), self.target, self.timeout_s)

    # ------------------------------------------------------------ membership

    async def _node_call(self, args: list[Any]) -> Any:
        test_now = self._test_clock() * 1000 if self._test_clock is not None else False
        where = self.shards.of(wire.NODES_KEY)
        if where is None:
            self.shards.stale()
            raise RedisError("no redis server serves the node registry now (a failover?)")
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self.shards.client(where).fcall(
                    self.calls.node_function, 1, wire.NODES_KEY, wire.encode([*args, test_now])
                )
        except (RedisError, OSError, TimeoutError):
            self.shards.stale()
            raise
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
        self.waits.drop_all()
        self.known_tags.clear()
        self.listener.follow(self._channel())
        for owner in list(self._owners):
            owner.waits.clear()
            owner.tags.clear()  # nothing to release: the old incarnation is reaped whole
            close = getattr(owner.sink, "close", None)
            if close is not None:
                close()


def _log_released(owner: Owner, n: int) -> None:
    if n:
        log.info(
            "%d lease(s) released: %s disconnected",
            n,
            owner.peer,
            extra={"event": "released_on_disconnect", "peer": owner.peer, "count": n},
        )
