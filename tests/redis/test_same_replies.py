"""The Redis backend against the in-memory one: the same random operations, the same replies.

Hypothesis drives both backends with one sequence of requests (from three
connections, on two queues and their dead-letter queues, with keys,
priorities, delays, batches, leases that run out and connections that close)
and a clock both read: the Redis backend runs the library's test build, which
takes the time from the call instead of Redis ``TIME``, so no test sleeps. After
every step the two replies must be equal once ids are replaced by the order
they were put in (the two backends spell ids differently) and error messages
are left out (error codes must match).

Only the operations both backends implement today are compared. Neither makes
a queue for a GET, so STATS and PEEK look at any queue, stored in or not.
Idle queues are never forgotten here (``forget_after_s`` is huge): the
in-memory backend forgets on the test's clock, Redis on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from broker.backend.memory import MemoryBackend
from broker.backend.redis.backend import RedisBackend
from broker.backend.redis.target import parse
from broker.config import Config
from broker.protocol import requests as rq
from broker.protocol.replies import Reply, to_builtins
from tests.redis.servers import flush

CONFIG = Config(
    max_attempts=2,
    max_body=5,
    max_queue_length=8,
    acked_history=3,
    max_reply_bytes=4,
    lease_s=10.0,
    forget_after_s=1e9,
)
QUEUES = ("a", "a", "b", "a.dead")
KEYS = (None, "k1", "k1", "k2")
BODIES = (b"1", b'"x"', b"[1,2]", b"12345", b"123456")  # the last is over max-body


class Sink:
    def __init__(self, n: int) -> None:
        self.peer = f"127.0.0.1:{1000 + n}"
        self.requests_served = 0

    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        raise AssertionError("no waiting GET in this test")


class Labels:
    """Ids of one backend -> the order their messages were put in ("#0", "#1", ...)."""

    def __init__(self) -> None:
        self.of: dict[str, str] = {}

    def learn(self, ids: Sequence[str], first: int) -> None:
        for i, text in enumerate(ids):
            self.of[text] = f"#{first + i}"

    def apply(self, value: Any) -> Any:
        if isinstance(value, dict) and value.get("state") == "acked":
            value = {
                k: v for k, v in value.items() if k != "attempts"
            }  # (issue 13: not yet in memory)
        if isinstance(value, dict):
            out = {
                k: self.apply(v) for k, v in value.items() if k != "message" or not _error(value)
            }
            return out
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        if isinstance(value, str):
            return self.of.get(value, value)
        if isinstance(value, float):
            return round(value, 3)
        return value


def _error(reply: dict[str, Any]) -> bool:
    return reply.get("ok") is False


class SameReplies(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = 1000.0
        flush(parse(self.url).hosts[0][1])
        clock = self.clock
        self.memory = MemoryBackend(CONFIG, first_seq=10**12, clock=clock)  # ids unlike any name
        self.redis = RedisBackend(CONFIG, parse(self.url), clock=clock, node_id="model")
        self.run(self.memory.start())
        self.run(self.redis.start())
        self.owners: list[tuple[object, object]] = []
        self.labels = (Labels(), Labels())
        self.put_count = 0
        self.ids: list[tuple[str, str]] = []  # (memory id, redis id) in put order
        self.stored: set[str] = set()

    def clock(self) -> float:
        return self.now

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.redis.stop())
        self.run(self.memory.stop())
        self.loop.close()

    @initialize()
    def open_connections(self) -> None:
        for n in range(3):
            self.owners.append((self.memory.open(Sink(n)), self.redis.open(Sink(n))))

    def both(self, owner: int | None, *requests: rq.Request) -> list[Any]:
        """Send the same requests to both; their replies, checked equal, as plain values."""
        out = []
        for side, backend in enumerate((self.memory, self.redis)):
            who = self.owners[owner][side] if owner is not None else None
            replies = self.run(_execute(backend, who, list(requests)))
            out.append([to_builtins(r) if r is not None else None for r in replies])
        for m, r in zip(out[0], out[1], strict=True):
            self.learn(m, r)
        seen = [self.labels[i].apply(out[i]) for i in (0, 1)]
        assert seen[0] == seen[1], f"memory {out[0]}\n redis {out[1]}"
        return out[0]

    def learn(self, memory: Any, redis: Any) -> None:
        if not isinstance(memory, dict) or not memory.get("ok"):
            return
        ids_m = memory.get("ids") or ([memory["id"]] if "id" in memory else None)
        ids_r = redis.get("ids") or ([redis["id"]] if "id" in redis else None)
        if ids_m and ids_r:
            self.labels[0].learn(ids_m, self.put_count)
            self.labels[1].learn(ids_r, self.put_count)
            self.ids.extend(zip(ids_m, ids_r, strict=True))
            self.put_count += len(ids_m)

    def id_of(self, n: int, side: int) -> str:
        if not self.ids:
            return "ffff"
        return self.ids[n % len(self.ids)][side]

    # ------------------------------------------------------------------ rules

    @rule(
        queue=st.sampled_from(QUEUES),
        items=st.lists(
            st.tuples(
                st.sampled_from(BODIES),
                st.sampled_from(KEYS),
                st.sampled_from((0.0, 0.0, 1.0, 5.0)),
                st.sampled_from((0, 0, -1, 2)),
                st.sampled_from((None, None, 1, 3)),
            ),
            min_size=1,
            max_size=3,
        ),
        single=st.booleans(),
    )
    def put(self, queue: str, items: list[Any], single: bool) -> None:
        if single:
            body, key, delay, priority, attempts = items[0]
            req: rq.Request = rq.Put(
                queue=queue,
                body=msgspec.Raw(body),
                key=key,
                delay=delay,
                priority=priority,
                max_attempts=attempts,
            )
        else:
            req = rq.Put(
                queue=queue,
                messages=[
                    rq.PutItem(body=msgspec.Raw(b), key=k, delay=d, priority=p, max_attempts=a)
                    for b, k, d, p, a in items
                ],
            )
        [reply] = self.both(0, req)
        if reply["ok"]:
            self.stored.add(queue)

    @rule(
        owner=st.integers(0, 2),
        queue=st.sampled_from(QUEUES),
        max=st.integers(1, 4),
        lease=st.sampled_from((None, 1.0, 20.0)),
    )
    def get(self, owner: int, queue: str, max: int, lease: float | None) -> None:
        self.both(owner, rq.Get(queue=queue, max=max, lease=lease))

    @rule(owner=st.integers(0, 2), n=st.integers(0, 30), many=st.booleans())
    def ack(self, owner: int, n: int, many: bool) -> None:
        ids = (self.id_of(n, 0), self.id_of(n, 1))
        if many:
            extra = (self.id_of(n + 1, 0), self.id_of(n + 1, 1))
            self.ack_both(owner, [[ids[0], extra[0], "ffff"], [ids[1], extra[1], "ffff"]])
        else:
            self.ack_both(owner, [ids[0], ids[1]])

    def ack_both(self, owner: int, per_side: list[Any]) -> None:
        out = []
        for side, backend in enumerate((self.memory, self.redis)):
            arg = per_side[side]
            req = rq.Ack(ids=arg) if isinstance(arg, list) else rq.Ack(id=arg)
            replies = self.run(_execute(backend, self.owners[owner][side], [req]))
            out.append(self.labels[side].apply(to_builtins(replies[0])))
        assert out[0] == out[1]

    @rule(owner=st.integers(0, 2), n=st.integers(0, 30), delay=st.sampled_from((0.0, 3.0)))
    def nack(self, owner: int, n: int, delay: float) -> None:
        self.per_id(owner, n, lambda i: rq.Nack(id=i, delay=delay))

    @rule(owner=st.integers(0, 2), n=st.integers(0, 30), lease=st.sampled_from((None, 2.0)))
    def touch(self, owner: int, n: int, lease: float | None) -> None:
        self.per_id(owner, n, lambda i: rq.Touch(id=i, lease=lease))

    @rule(n=st.integers(0, 30))
    def info(self, n: int) -> None:
        self.per_id(0, n, lambda i: rq.Info(id=i))

    def per_id(self, owner: int, n: int, make: Any) -> None:
        out = []
        for side, backend in enumerate((self.memory, self.redis)):
            request = make(self.id_of(n, side))
            replies = self.run(_execute(backend, self.owners[owner][side], [request]))
            out.append(self.labels[side].apply(to_builtins(replies[0])))
        assert out[0] == out[1]

    @rule(queue=st.sampled_from(("a", "b")))
    def purge(self, queue: str) -> None:
        if queue in self.stored:
            self.both(0, rq.Purge(queue=queue))

    @rule(queue=st.sampled_from(("a", "b")))
    def redrive(self, queue: str) -> None:
        if queue + ".dead" in self.stored or queue in self.stored:
            [reply] = self.both(0, rq.Redrive(queue=queue))
            if reply["ok"] and reply["redriven"]:
                self.stored.add(queue)

    @rule(owner=st.integers(0, 2))
    def reconnect(self, owner: int) -> None:
        m, r = self.owners[owner]

        async def close() -> None:
            self.memory.close(m)
            self.redis.close(r)  # its release goes out with the next call

        self.run(close())
        self.owners[owner] = (self.memory.open(Sink(owner)), self.redis.open(Sink(owner)))

    @rule(seconds=st.sampled_from((0.5, 1.0, 2.0, 5.0, 11.0)))
    def advance(self, seconds: float) -> None:
        """Time passes: deadlines fire at their instant in both (a PING makes the in-memory
        backend catch up now, as its loop timer would have; Redis fires them lazily)."""
        self.now += seconds
        self.run(_execute(self.memory, None, [rq.Ping()]))

    @rule(queue=st.sampled_from(QUEUES))
    def stats(self, queue: str) -> None:
        out = []
        for backend in (self.memory, self.redis):
            replies = self.run(_execute(backend, None, [rq.Stats(queue=queue)]))
            reply = to_builtins(replies[0])
            out.append(reply.get("queues", reply.get("error")))
        assert out[0] == out[1], f"memory {out[0]}\n redis {out[1]}"

    @rule(
        queue=st.sampled_from(QUEUES),
        state=st.sampled_from((None, "ready", "delayed", "leased", "dead")),
        limit=st.integers(1, 5),
    )
    def peek(self, queue: str, state: str | None, limit: int) -> None:
        self.both(0, rq.Peek(queue=queue, state=state, limit=limit))  # type: ignore[arg-type]


async def _execute(backend: Any, owner: object, requests: list[rq.Request]) -> Any:
    """``execute`` on the loop, as the server calls it; its replies, awaited if need be."""
    replies = backend.execute(owner, requests)
    if isinstance(replies, list):
        return replies
    async with asyncio.timeout(10):
        return await replies


@pytest.mark.timeout(300)
def test_redis_gives_the_replies_memory_gives(redis_url: str) -> None:
    SameReplies.url = redis_url
    run = settings(
        max_examples=150,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(SameReplies, settings=run)


def test_a_redrive_first_dead_letters_the_queue_s_expired_last_attempts(redis_url: str) -> None:
    """Found by the machine above: a last attempt whose lease ran out was still leased on
    Redis (which fires deadlines lazily, queue by queue) when REDRIVE asked only the .dead
    queue, so memory redrove it and Redis did not."""
    SameReplies.url = redis_url
    state = SameReplies()
    try:
        state.open_connections()
        state.put(
            queue="b", items=[(b"1", None, 0.0, 0, 1), (b"1", None, 0.0, 0, None)], single=False
        )
        state.get(owner=0, queue="b", max=1, lease=None)
        state.advance(seconds=11.0)  # past the 10 s lease: attempt 1 of 1 was the last
        state.redrive(queue="b")  # both must say "redriven": 1
    finally:
        state.teardown()
