"""A long PURGE, REDRIVE or DELETE runs a slice at a time on the loop (backend/memory/slices.py).

With slices of one step, a PURGE of many messages is answered after other
owners' requests ran in between; the requests after it in its own batch run
after it, in order; the durable backend answers it once its records are
written, and a restart finds the queue purged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.backend.memory import MemoryBackend
from broker.backend.memory import slices as slices_module
from broker.config import Config
from broker.durability.backend import DurableBackend
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.replies import Reply

N = 5000


class Sink:
    peer = "127.0.0.1:1"
    requests_served = 0

    def __init__(self) -> None:
        self.replies: list[Reply] = []

    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        self.replies.append(reply)


@pytest.fixture
def one_step_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every slice is one step of 100 messages: a job of N messages takes N/100 slices."""
    monkeypatch.setattr(slices_module, "SLICE_S", 0.0)
    monkeypatch.setattr(slices_module, "STEP", 100)


@pytest.fixture
async def memory(one_step_slices: None) -> AsyncIterator[MemoryBackend]:
    """A started in-memory backend whose long jobs run in slices of one step."""
    backend = MemoryBackend(Config(), first_seq=1)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


def fill(backend: Any, owner: object, queue: str, n: int, **fields: Any) -> None:
    item = rq.PutItem(body=msgspec.Raw(b"1"), **fields)
    for _ in range(n // 500):
        out = backend.execute(owner, [rq.Put(queue=queue, messages=[item] * 500)])
        assert isinstance(out, list) and isinstance(out[0], rp.PutManyReply)


async def test_a_long_purge_lets_others_run_and_what_follows_it_waits_for_it(
    memory: MemoryBackend,
) -> None:
    backend = memory
    mine, other = backend.open(Sink()), backend.open(Sink())
    fill(backend, mine, "big", N, priority=1)
    pending = backend.execute(
        mine,
        [
            rq.Purge(queue="big"),
            rq.Put(queue="big", body=msgspec.Raw(b"2")),
            rq.Stats(queue="big"),
        ],
    )
    assert not isinstance(pending, list)  # goes on in slices
    ran_between = 0
    while not asyncio.ensure_future(pending).done():
        out = backend.execute(other, [rq.Stats(queue="big")])  # served between slices
        assert isinstance(out, list)
        stats = out[0]
        assert isinstance(stats, rp.StatsReply)
        ran_between += 1
        await asyncio.sleep(0)
    assert ran_between > 10
    purged, put, stats = await pending
    assert purged == rp.PurgeReply(purged=N) and isinstance(put, rp.PutReply)
    assert isinstance(stats, rp.StatsReply)
    figures = stats.queues["big"]
    assert (figures.ready, figures.purged, figures.put) == (1, N, N + 1)


async def test_a_long_redrive_in_slices_moves_every_dead_letter(memory: MemoryBackend) -> None:
    backend = memory
    owner = backend.open(Sink())
    fill(backend, owner, "q.dead", N)
    pending = backend.execute(owner, [rq.Redrive(queue="q")])
    assert not isinstance(pending, list)
    (reply,) = await pending
    assert reply == rp.RedriveReply(redriven=N)
    assert backend.engine.queue_stats(backend.engine.queue("q"), 0.0)["ready"] == N


@pytest.mark.usefixtures("one_step_slices")
async def test_a_stop_while_a_job_runs_leaves_no_future_behind() -> None:
    backend = MemoryBackend(Config(), first_seq=1)
    await backend.start()
    owner = backend.open(Sink())
    fill(backend, owner, "big", N, priority=1)
    pending = backend.execute(owner, [rq.Purge(queue="big")])
    assert not isinstance(pending, list)
    future = asyncio.ensure_future(pending)
    await backend.stop()
    assert future.cancelled()


@pytest.mark.usefixtures("one_step_slices")
async def test_a_durable_purge_in_slices_is_answered_and_replayed(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path), fsync="always")
    backend = DurableBackend(config)
    await backend.start()
    try:
        owner = backend.open(Sink())
        item = rq.PutItem(body=msgspec.Raw(b"1"), priority=1)
        for _ in range(N // 500):
            out = backend.execute(owner, [rq.Put(queue="big", messages=[item] * 500)])
            if not isinstance(out, list):
                await out
        pending = backend.execute(owner, [rq.Purge(queue="big"), rq.Stats(queue="big")])
        assert not isinstance(pending, list)
        purged, _ = await pending
        assert purged == rp.PurgeReply(purged=N)
    finally:
        await backend.stop()
    again = DurableBackend(config)
    await again.start()
    try:
        assert again.engine.totals()["messages"] == 0
    finally:
        await again.stop()


async def test_a_long_delete_runs_in_slices_and_answers_its_waiting_gets_at_its_end(
    memory: MemoryBackend,
) -> None:
    backend = memory
    sink = Sink()
    owner, waiting = backend.open(Sink()), backend.open(sink)
    fill(backend, owner, "big", N, priority=1)
    backend.execute(owner, [rq.Pause(queue="big")])
    assert backend.execute(waiting, [rq.Get(queue="big", wait=60)]) == [None]  # it waits
    pending = backend.execute(owner, [rq.Delete(queue="big"), rq.Queues()])
    assert not isinstance(pending, list)
    await asyncio.sleep(0)
    assert sink.replies == []  # the queue is still being deleted
    deleted, queues = await pending
    assert deleted == rp.DeleteReply(deleted=N) and queues == rp.QueuesReply(queues=[])
    assert sink.replies == [rp.GetReply(messages=[])]
