"""Coalescing: every op of one event-loop iteration in one pipeline, one call per tag.

Owns: the path from an op to Redis and back. Ops submitted during one loop
iteration are grouped by hash tag; each tag's ops become one call of the
library (one atomic function run for the whole group), and every call of the
iteration bound for one Redis server goes out in one batch: one *lane* per
server (a single Redis has one; a Redis Cluster one per master, as the slot
map says), so a master that fails over holds up its own tags only. A lane
writes each batch on its link (``link.py``) at once, whether or not the ones
before it were answered: one connection runs them in order, so a node's ops
on a tag reach Redis in the order they were submitted. A call that gets
no answer within ``timeout_s`` fails its ops with ``unavailable`` (they may or
may not have been applied). If Redis lost the library (a restart without
persistence, ``FUNCTION FLUSH``), it is loaded again and the calls resent (a
missing function applied nothing). A Redis at its ``maxmemory`` refuses
the calls that store bodies: their PUTs get ``memory_limit`` and their other
ops are resent to the function it allows (ACKs still drain a full Redis).
Must never: block the loop, or hold an op's reply hostage to another server's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import (
    ClusterDownError,
    MovedError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from broker.backend.redis import wire
from broker.backend.redis.link import Link
from broker.backend.redis.shards import Shards
from broker.errors import MemoryLimit, Unavailable, WonderQError

log = logging.getLogger("wonderq.redis")

_REDIRECTS_MAX = 3  # MOVED answers an op may follow before it fails

#: what an op's submitter gets back: its result and the call's bodies, or an error
Done = Callable[[Any, list[bytes], WonderQError | None], None]


@dataclass(slots=True)
class Op:
    args: list[Any]
    bodies: list[bytes]
    done: Done
    body_at: int = -1  # index in ``args`` that receives the first body's ARGV position
    redirects: int = 0  # times a cluster answered MOVED to it


@dataclass(slots=True)
class Reply:
    """What one call returned besides its ops' results."""

    tag: str
    wakes: list[list[Any]]  # {queue, next deadline (ms, Redis time)}
    deliveries: list[list[Any]]  # {waiter id, messages} for this node's waiting GETs
    events: list[list[Any]]  # {queue, "expired" | "dead_lettered", count}
    now_ms: float  # Redis time when the call ran
    bodies: list[bytes] = field(default_factory=list)


class Lane:
    """The ops bound for one Redis server, and its batches in flight on its link."""

    __slots__ = ("name", "node_ops", "opening", "pending", "tasks")

    def __init__(self, name: str) -> None:
        self.name = name  # host:port of the server
        self.pending: dict[str, list[Op]] = {}  # tag -> its ops, in submission order
        self.node_ops: list[Op] = []  # ops of the node registry, one call each
        self.tasks: set[asyncio.Task[None]] = set()  # batches awaiting their replies
        self.opening: asyncio.Task[None] | None = None  # its link being opened

    def idle(self) -> bool:
        return not (self.pending or self.node_ops or self.tasks or self.opening)


class Fenced(Unavailable):
    """This node's incarnation was reaped: it must close its connections and rejoin."""


class Calls:
    def __init__(
        self,
        shards: Shards,
        function: str,
        node_function: str,
        head: Callable[[], list[Any]],
        on_reply: Callable[[Reply], None],
        on_created: Callable[[list[str], Callable[[], None]], None],
        on_fenced: Callable[[], None],
        reload_library: Callable[[], Any],
        timeout_s: float,
    ) -> None:
        self.shards = shards
        self._function = function  # refused by a Redis at its maxmemory: calls with bodies
        self._function_oom = function + "_oom"  # allowed there: the rest (they drain it)
        self.node_function = node_function
        self._head = head  # [incarnation, test clock, defaults]: fresh per call
        self._on_reply = on_reply
        self._on_created = on_created
        self._on_fenced = on_fenced
        self._reload = reload_library
        self.timeout_s = timeout_s
        self._lanes: dict[str, Lane] = {}
        self._scheduled = False
        self.calls = 0  # since start: calls and pipelines sent (the bench reads them)
        self.pipelines = 0

    def _lane(self, key: str, op: Op) -> Lane | None:
        """The lane of the server that holds ``key``; None (``op`` fails soon) when no
        server serves it now."""
        where = self.shards.of(key)
        if where is None:
            self.shards.stale()
            error = Unavailable("no redis server serves this queue now (a failover?); not applied")
            asyncio.get_running_loop().call_soon(op.done, None, [], error)
            return None
        lane = self._lanes.get(where)
        if lane is None:
            lane = self._lanes[where] = Lane(where)
        return lane

    def submit(self, tag: str, op: Op) -> None:
        lane = self._lane(wire.tag_key(tag), op)
        if lane is None:
            return
        ops = lane.pending.get(tag)
        if ops is None:
            lane.pending[tag] = [op]
        else:
            ops.append(op)
        self._schedule(lane)

    def submit_node(self, op: Op) -> None:
        """An op of the node registry (``wq:{nodes}``), in its server's pipeline."""
        lane = self._lane(wire.NODES_KEY, op)
        if lane is None:
            return
        lane.node_ops.append(op)
        self._schedule(lane)

    def _schedule(self, lane: Lane) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def idle(self) -> bool:
        return all(lane.idle() for lane in self._lanes.values())

    async def wait_idle(self) -> None:
        """Until every op submitted so far has its result."""
        while not self.idle():
            busy: set[asyncio.Task[None]] = set()
            for lane in self._lanes.values():
                busy |= lane.tasks
                if lane.opening is not None:
                    busy.add(lane.opening)
            if busy:
                await asyncio.wait(busy)
            await asyncio.sleep(0)  # the tasks' callbacks run, or the flush is scheduled

    def _flush(self) -> None:
        self._scheduled = False
        for lane in list(self._lanes.values()):
            self._start(lane)

    def _start(self, lane: Lane) -> None:
        """Write the lane's pending ops on its link now (one batch; the ones before it
        may still be in flight), or open the link first."""
        if (not lane.pending and not lane.node_ops) or lane.opening is not None:
            return
        link = self.shards.link(lane.name)
        if link is None:
            lane.opening = asyncio.get_running_loop().create_task(self._open(lane))
            return
        batch, lane.pending = lane.pending, {}
        node_ops, lane.node_ops = lane.node_ops, []
        tags = list(batch)
        sent = link.send(self._commands(tags, batch, node_ops))
        task = asyncio.get_running_loop().create_task(
            self._receive(link, tags, batch, node_ops, sent)
        )
        lane.tasks.add(task)
        task.add_done_callback(lambda done: self._received(lane, done))

    def _received(self, lane: Lane, task: asyncio.Task[None]) -> None:
        lane.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("redis call failed", exc_info=task.exception())

    async def _open(self, lane: Lane) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.shards.open_link(lane.name)
        except (RedisError, OSError, TimeoutError) as exc:
            self.shards.stale()
            error = Unavailable(f"redis unreachable: {_why(exc)}; the request was not applied")
            ops = [op for ops in lane.pending.values() for op in ops] + lane.node_ops
            lane.pending, lane.node_ops = {}, []
            _fail(ops, error)
        finally:
            lane.opening = None
        self._start(lane)

    async def _roundtrip(self, link: Link, sent: asyncio.Future[list[Any]]) -> list[Any]:
        """The replies of a batch sent on ``link``; past the timeout the link is closed
        (what is in flight on it fails too: a stalled link must not pile up calls)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await sent
        except TimeoutError:
            link.close()
            raise

    async def _receive(
        self,
        link: Link,
        tags: list[str],
        batch: dict[str, list[Op]],
        node_ops: list[Op],
        sent: asyncio.Future[list[Any]],
    ) -> None:
        try:
            raw = await self._roundtrip(link, sent)
            if any(_no_function(r) for r in raw):  # a shard lost the library: load it again,
                async with asyncio.timeout(self.timeout_s):  # resend what failed
                    await self._reload()
                redo_tags = [t for t, r in zip(tags, raw, strict=False) if _no_function(r)]
                redo_node = [
                    op for op, r in zip(node_ops, raw[len(tags) :], strict=True) if _no_function(r)
                ]
                resent = link.send(self._commands(redo_tags, batch, redo_node))
                again = iter(await self._roundtrip(link, resent))
                raw = [next(again) if _no_function(r) else r for r in raw]
            if any(_out_of_memory(r) for r in raw[: len(tags)]):
                raw = await self._without_puts(link, tags, batch, raw)
        except (RedisError, OSError, TimeoutError) as exc:
            self.shards.stale()
            error = Unavailable(
                f"redis unreachable: {_why(exc)}; the request may or may not have been applied"
            )
            for ops in [*batch.values(), node_ops]:
                _fail(ops, error)
            return
        for tag, result in zip(tags, raw[: len(tags)], strict=True):
            if not self._redirected(result, batch[tag], functools.partial(self.submit, tag)):
                self._settle(tag, batch[tag], result)
        for op, result in zip(node_ops, raw[len(tags) :], strict=True):
            if self._redirected(result, [op], self.submit_node):
                continue
            if isinstance(result, BaseException):
                op.done(None, [], _error_of(result))
            else:
                op.done(wire.decode(result), [], None)

    def _redirected(self, result: Any, ops: list[Op], resubmit: Callable[[Op], None]) -> bool:
        """A cluster's slot moved (MOVED: nothing was applied) or is not served: the map
        is read again, and moved ops are sent again (a few times at most)."""
        if isinstance(result, (ClusterDownError, TryAgainError)):
            self.shards.stale()
        if not isinstance(result, MovedError):
            return False
        self.shards.moved(result.slot_id, result.host, result.port)
        if any(op.redirects >= _REDIRECTS_MAX for op in ops):
            return False
        for op in ops:
            op.redirects += 1
            resubmit(op)
        return True

    async def _without_puts(
        self, link: Link, tags: list[str], batch: dict[str, list[Op]], raw: list[Any]
    ) -> list[Any]:
        """Redis at its maxmemory refused calls that store bodies: their PUTs get
        ``memory_limit``, their other ops go again (a refused call applied nothing)."""
        redo: list[str] = []
        for tag, result in zip(tags, raw, strict=False):
            if _out_of_memory(result):
                _fail([op for op in batch[tag] if op.bodies], _error_of(result))
                batch[tag] = [op for op in batch[tag] if not op.bodies]
                if batch[tag]:
                    redo.append(tag)
        if not redo:
            return raw
        resent = link.send(self._commands(redo, batch, []))
        again = dict(zip(redo, await self._roundtrip(link, resent), strict=True))
        return [again.get(tag, r) for tag, r in zip(tags, raw, strict=False)] + raw[len(tags) :]

    def _commands(
        self, tags: list[str], batch: dict[str, list[Op]], node_ops: list[Op]
    ) -> list[list[Any]]:
        """One library call per tag (its ops' bodies after the head), one per registry op."""
        head = self._head()
        test_now = head[1]
        out: list[list[Any]] = []
        for tag in tags:
            args: list[Any] = []
            bodies: list[bytes] = []
            for op in batch[tag]:
                if op.bodies:
                    op.args[op.body_at] = len(bodies) + 2  # ARGV[1] is the head
                    bodies.extend(op.bodies)
                args.append(op.args)
            function = self._function if bodies else self._function_oom
            out.append(
                ["FCALL", function, 1, wire.tag_key(tag), wire.encode([*head, args]), *bodies]
            )
        for op in node_ops:
            out.append(
                ["FCALL", self.node_function, 1, wire.NODES_KEY, wire.encode([*op.args, test_now])]
            )
        self.calls += len(out)
        self.pipelines += 1
        return out

    def _settle(self, tag: str, ops: list[Op], result: Any) -> None:
        if isinstance(result, BaseException):
            _fail(ops, _error_of(result))
            return
        meta = wire.decode(result[0])
        if meta[0] == "fenced":
            _fail(ops, Fenced("this node was declared dead by its peers; reconnect"))
            self._on_fenced()
            return
        results, wakes, deliveries, events, now_ms, created = meta
        bodies = result[1:]

        def answer() -> None:  # the ops' replies, then what the call served to waits
            for op, res in zip(ops, results, strict=True):
                op.done(res, bodies, None)
            self._on_reply(Reply(tag, wakes, deliveries, events, now_ms, bodies))

        if created:  # registered before any reply says the PUT that made a queue is done
            self._on_created(created, answer)
        else:
            answer()


def ignore(result: Any, bodies: list[bytes], error: WonderQError | None) -> None:
    """The ``done`` of an op whose result nobody needs (a failure is only logged)."""
    if error is not None:
        log.debug("redis op failed: %s", error.message)


def _fail(ops: list[Op], error: WonderQError) -> None:
    for op in ops:
        op.done(None, [], error)


def _no_function(result: Any) -> bool:
    return isinstance(result, ResponseError) and "function not found" in str(result).lower()


def _out_of_memory(result: Any) -> bool:
    return isinstance(result, OutOfMemoryError)


def _error_of(exc: BaseException) -> WonderQError:
    text = str(exc)
    if isinstance(exc, OutOfMemoryError):  # (redis-py takes the OOM code off the text)
        return MemoryLimit(f"redis is out of memory (maxmemory): {text}")
    return Unavailable(f"redis error: {text}; the request may or may not have been applied")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no reply in time"
    return str(exc) or type(exc).__name__
