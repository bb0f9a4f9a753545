"""The in-memory backend's one timer: armed at the engine's next deadline after every change.

A change that brings a deadline earlier than the armed one re-arms it; acked
leases leave stale entries that a timer armed at them wakes for; and asking
for the next deadline after every change drops the stale entries at the top
of the heap, so acked messages are not kept alive by it. Real loop time, no
sleep: each test awaits the delivery the deadline causes, bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from broker.backend.memory import MemoryBackend
from broker.config import Config
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.replies import Reply

BOUND_S = 10.0  # far above the short lease below, far below the long ones


class Sink:
    peer = "127.0.0.1:1"
    requests_served = 0

    def __init__(self) -> None:
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()

    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        self.replies.put_nowait(reply)


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    memory = MemoryBackend(Config(), first_seq=1)
    await memory.start()
    try:
        yield memory
    finally:
        await memory.stop()


def leased_id(backend: MemoryBackend, owner: object, lease: float) -> str:
    (reply,) = backend.execute(owner, [rq.Get(queue="q", lease=lease)])  # type: ignore[misc]
    assert isinstance(reply, rp.GetReply) and len(reply.messages) == 1
    return reply.messages[0].id


async def test_a_lease_shorter_than_the_armed_deadline_still_expires_on_its_own(
    backend: MemoryBackend,
) -> None:
    a, b, c = Sink(), Sink(), Sink()
    owners = [backend.open(s) for s in (a, b, c)]
    backend.execute(owners[0], [rq.Put(queue="q", body=msgspec.Raw(b"1")) for _ in range(2)])
    leased_id(backend, owners[0], 600.0)  # the timer is armed 600 s ahead
    short = leased_id(backend, owners[1], 0.05)  # earlier: the timer must move
    # a waiting GET with a long wait: its own deadline never comes in this test
    assert backend.execute(owners[2], [rq.Get(queue="q", wait=600.0)]) == [None]
    reply = await asyncio.wait_for(c.replies.get(), BOUND_S)
    assert isinstance(reply, rp.GetReply)
    assert [(m.id, m.attempts) for m in reply.messages] == [(short, 2)]


async def test_a_timer_left_early_by_acked_leases_wakes_and_arms_at_the_next_one(
    backend: MemoryBackend,
) -> None:
    """Acked leases leave stale entries at the top of the heap, and the timer armed at
    them: it wakes for nothing, and arms at the next live deadline."""
    a, c = Sink(), Sink()
    mine, waiting = backend.open(a), backend.open(c)
    backend.execute(mine, [rq.Put(queue="q", body=msgspec.Raw(b"1")) for _ in range(2)])
    first = leased_id(backend, mine, 0.02)
    second = leased_id(backend, mine, 0.1)
    assert backend.execute(mine, [rq.Ack(id=first)]) == [rp.OK]  # its entry goes stale
    assert backend.execute(waiting, [rq.Get(queue="q", wait=600.0)]) == [None]
    reply = await asyncio.wait_for(c.replies.get(), BOUND_S)
    assert isinstance(reply, rp.GetReply)
    assert [(m.id, m.attempts) for m in reply.messages] == [(second, 2)]


async def test_acked_leases_leave_the_deadline_heap_as_requests_come(
    backend: MemoryBackend,
) -> None:
    """A lease batch whose messages were all acked holds them until its heap entry goes:
    the entries must go as the consumer goes on (they once piled up until the lease's
    deadline, 64 acked messages each, when the timer was armed early enough)."""
    producer, consumer = backend.open(Sink()), backend.open(Sink())
    batch = [rq.PutItem(body=msgspec.Raw(b"1")) for _ in range(64)]
    for _ in range(100):
        backend.execute(producer, [rq.Put(queue="q", messages=batch)])
        (got,) = backend.execute(consumer, [rq.Get(queue="q", max=64, lease=600.0)])  # type: ignore[misc]
        assert isinstance(got, rp.GetReply) and len(got.messages) == 64
        (acked,) = backend.execute(consumer, [rq.Ack(ids=[m.id for m in got.messages])])  # type: ignore[misc]
        assert isinstance(acked, rp.AckManyReply) and acked.acked == 64
    assert len(backend.engine._deadlines) <= 2
