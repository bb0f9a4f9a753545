"""Group commit with ``--fsync always``: one fsync per loop iteration, replies after it.

The flush runs on the loop (as Redis's ``appendfsync always``): every batch that
changed state in one loop iteration, from any connection, shares one
``fdatasync``, and no reply that confirms a change exists before that call
returned. ``os.fdatasync`` is wrapped to see the state at the moment it runs.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.backend.base import Replies
from broker.config import Config
from broker.durability.backend import DurableBackend
from broker.durability.commit import Commit
from broker.durability.files import segment_name
from broker.durability.replay import ReplayState, scan
from broker.durability.store import recover
from broker.errors import Unavailable
from broker.protocol import requests as rq
from broker.protocol.replies import PutReply, Reply


def put(body: int) -> rq.Put:
    return rq.Put(queue="q", body=msgspec.Raw(b"%d" % body))


class Sink:
    def __init__(self) -> None:
        self.delivered: list[tuple[rq.AnyRequest, Reply]] = []

    def deliver(self, request: rq.AnyRequest, reply: Reply) -> None:
        self.delivered.append((request, reply))


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[DurableBackend]:
    b = DurableBackend(Config(port=0, data_dir=str(tmp_path), fsync="always"))
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def spy_fdatasync(monkeypatch: pytest.MonkeyPatch, at_call: Callable[[], object]) -> list[object]:
    """Wrap os.fdatasync: each call on this (the loop's) thread records ``at_call()``
    taken just before it runs (the thread that fills the log ahead also fsyncs)."""
    seen: list[object] = []
    real = os.fdatasync
    loop_thread = threading.get_ident()

    def fdatasync(fd: int) -> None:
        if threading.get_ident() == loop_thread:
            seen.append(at_call())
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return seen


async def test_puts_of_several_connections_in_one_iteration_share_one_fsync(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = [backend.open(Sink()) for _ in range(3)]
    results: list[Any] = []
    seen = spy_fdatasync(monkeypatch, lambda: [r.done() for r in results])
    fsyncs = backend.log.fsyncs
    # what data_received does for three connections read in one poll
    for i, owner in enumerate(owners):
        results.append(backend.execute(owner, [put(i)]))
    assert all(isinstance(r, Commit) and not r.done() for r in results)
    assert backend.log.synced < backend.log.appended
    replies: list[Replies] = [await r for r in results]
    assert backend.log.fsyncs == fsyncs + 1
    assert seen == [[False, False, False]]  # no reply existed while the fsync ran
    assert backend.log.synced == backend.log.appended
    assert [type(r[0]) for r in replies] == [PutReply] * 3  # each got its PUT id


async def test_a_batch_that_changes_nothing_is_answered_at_once(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = backend.open(Sink())
    seen = spy_fdatasync(monkeypatch, lambda: None)
    replies = backend.execute(owner, [rq.Ping(), rq.Get(queue="empty")])
    assert isinstance(replies, list) and len(replies) == 2
    await asyncio.sleep(0)  # let a (wrongly) scheduled flush run
    assert seen == []


async def test_a_commit_runs_its_callbacks_inside_the_flush(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replies of a batch go out in the loop iteration that fsynced them."""
    owner = backend.open(Sink())
    order: list[str] = []
    spy_fdatasync(monkeypatch, lambda: order.append("fsync"))
    result = backend.execute(owner, [put(1)])
    assert isinstance(result, Commit)
    result.add_done_callback(lambda _: order.append("replies"))
    loop = asyncio.get_running_loop()
    loop.call_soon(order.append, "next callback")  # queued after the flush
    await result
    assert order[:3] == ["fsync", "replies", "next callback"]


async def test_a_waiting_get_is_delivered_only_after_the_fsync_of_its_lease(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = Sink()
    consumer = backend.open(sink)
    producer = backend.open(Sink())
    seen = spy_fdatasync(monkeypatch, lambda: len(sink.delivered))
    assert backend.execute(consumer, [rq.Get(queue="q", wait=10)]) == [None]
    stored = backend.execute(producer, [put(1)])
    assert isinstance(stored, Commit)
    assert sink.delivered == []  # the lease is appended, not yet on disk
    await stored
    assert seen == [0] and len(sink.delivered) == 1


async def test_a_failed_fsync_answers_unavailable_and_nothing_is_written_after(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = backend.open(Sink())

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(os, "fdatasync", broken)
    result = backend.execute(owner, [put(1)])
    assert isinstance(result, Commit)
    with pytest.raises(Unavailable, match="injected I/O error"):
        await result
    written = backend.log.written
    with pytest.raises(Unavailable):
        backend.execute(owner, [put(2)])
    assert backend.log.written == written


# ---------------------------------------------------------------- Commit itself


async def test_commit_calls_plain_callbacks_at_once_and_task_wakeups_soon() -> None:
    loop = asyncio.get_running_loop()
    commit: Commit[int] = Commit(loop)
    assert asyncio.isfuture(commit) and asyncio.ensure_future(commit) is commit
    calls: list[int] = []
    commit.add_done_callback(lambda c: calls.append(c.result()))
    waiter = asyncio.ensure_future(_await(commit))
    await asyncio.sleep(0)  # the task now waits on the commit
    commit.set_result(7)
    assert calls == [7]  # at once
    assert not waiter.done()  # a task is woken by call_soon, never inside set_result
    assert await waiter == 7
    late: list[int] = []
    commit.add_done_callback(lambda c: late.append(c.result()))
    assert late == [7]


async def _await(commit: Commit[int]) -> int:
    return await commit


async def test_commit_cancel_and_exception() -> None:
    loop = asyncio.get_running_loop()
    cancelled: Commit[None] = Commit(loop)
    seen: list[bool] = []
    cancelled.add_done_callback(lambda c: seen.append(c.cancelled()))
    assert cancelled.cancel() and not cancelled.cancel()
    assert seen == [True]
    with pytest.raises(asyncio.CancelledError):
        cancelled.result()
    failed: Commit[None] = Commit(loop)
    failed.set_exception(Unavailable("x"))
    assert isinstance(failed.exception(), Unavailable)
    with pytest.raises(Unavailable):
        await failed
    with pytest.raises(asyncio.InvalidStateError):
        failed.set_result(None)


async def test_a_failing_callback_is_reported_and_the_others_still_run() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, ctx: reported.append(ctx))
    try:
        commit: Commit[None] = Commit(loop)
        ran: list[str] = []

        def boom(_: Commit[None]) -> None:
            raise RuntimeError("boom")

        commit.add_done_callback(boom)
        commit.add_done_callback(lambda _: ran.append("second"))
        commit.set_result(None)
    finally:
        loop.set_exception_handler(previous)
    assert ran == ["second"]
    assert [str(c["exception"]) for c in reported] == ["boom"]


# ------------------------------------------------------ filled ahead (always)


def data_end(path: Path) -> tuple[int, int]:
    """(end of the intact frames, file size) of one segment."""
    raw = path.read_bytes()
    return scan(raw, str(path), ReplayState()).good_end, len(raw)


async def test_the_segment_is_filled_ahead_and_a_clean_stop_cuts_the_fill(tmp_path: Path) -> None:
    b = DurableBackend(Config(port=0, data_dir=str(tmp_path), fsync="always"))
    await b.start()
    try:
        owner = b.open(Sink())
        result = b.execute(owner, [put(1)])
        assert isinstance(result, Commit)
        await result
        segment = tmp_path / segment_name(b.log.segment)
    finally:
        await b.stop()
    end, size = data_end(segment)
    assert end == size > 0  # nothing but frames is left
    assert recover(str(tmp_path)).notes == []


async def test_a_rotation_cuts_the_fill_of_the_old_segment(backend: DurableBackend) -> None:
    owner = backend.open(Sink())
    result = backend.execute(owner, [put(1)])
    assert isinstance(result, Commit)
    await result
    old = Path(backend.directory) / segment_name(backend.log.segment)
    await backend.log.rotate()
    end, size = data_end(old)
    assert end == size > 0
    result = backend.execute(owner, [put(2)])  # the new segment takes frames
    assert isinstance(result, Commit)
    await result
    new = Path(backend.directory) / segment_name(backend.log.segment)
    assert data_end(new)[0] > 0
