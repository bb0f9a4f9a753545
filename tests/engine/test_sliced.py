"""PURGE and REDRIVE a slice at a time, and what a queue operation may cost.

A job run in steps of a small budget ends where the whole operation ends,
each step leaves the engine whole (the replayed journal matches it after
every step), looks at no more messages than its budget, and leaves alone
what came after it began. PEEK, PURGE, REDRIVE and DELETE of a queue never
make a pass over the engine's messages.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.config import Config
from broker.engine import Engine, Message, State
from broker.engine.compact import SCAN_STEP
from broker.engine.deadlines import MOVE_STEP
from broker.engine.paged import PagedDict
from broker.engine.sliced import Purge, Sliced
from broker.errors import NotFound
from tests.engine.helpers import get, make_engine, new, put, put_one, state_of, stats
from tests.engine.replay import ReplayJournal


def journaled(**overrides: Any) -> tuple[Engine, ReplayJournal]:
    journal = ReplayJournal()
    return Engine(Config(**overrides), 1000, journal), journal


def a_mixed_queue(e: Engine, name: str = "q") -> dict[str, list[int]]:
    """Compact, priority, keyed (behind a leased head, behind a delayed head, free),
    delayed and leased messages in one queue; their ids by kind."""
    ids: dict[str, list[int]] = {"leased": put(e, name, new("lk1", key="a"))}
    ids["held"] = put(e, name, new("a2", key="a"), new("a3", key="a"))
    assert [m.seq for m in get(e, name, "L", max=1, lease_s=600)] == ids["leased"]
    ids["plain"] = put(e, name, *[f"p{i}" for i in range(7)])
    ids["prio"] = put(e, name, *[new(f"r{i}", priority=i % 3) for i in range(5)])
    ids["behind_delay"] = put(e, name, new("d1", key="b", delay_s=50), new("b2", key="b"))
    ids["keyed"] = put(e, name, *[new(f"k{i}", key=f"k{i % 2}") for i in range(4)])
    ids["delayed"] = put(e, name, *[new(f"t{i}", delay_s=100 + i) for i in range(3)])
    return ids


def test_a_purge_in_steps_of_two_ends_as_one_purge_and_is_whole_after_each() -> None:
    whole, _ = journaled()
    a_mixed_queue(whole)
    expected = whole.purge(1.0, "q")
    e, journal = journaled()
    ids = a_mixed_queue(e)
    job = e.purging("q")
    steps = 0
    while not job.step(1.0, 2):
        steps += 1
        journal.assert_matches(e, 1.0)
        assert steps < 200
    assert steps > 5 and job.count == expected == sum(len(v) for v in ids.values()) - 1
    journal.assert_matches(e, 1.0)
    assert [state_of(e, s) for s in ids["leased"]] == ["leased"]
    s, w = stats(e, "q", 1.0), stats(whole, "q", 1.0)
    assert s == w and (s["ready"], s["delayed"], s["leased"], s["purged"]) == (0, 0, 1, expected)
    assert e.totals() == whole.totals()
    e.ack(2.0, "L", ids["leased"][0])  # the queue goes on: its key's chain is whole
    assert get(e, "q", "B") == []


@pytest.mark.interpreted("counts a purge's steps by wrapping its _take")
def test_a_step_looks_at_no_more_messages_than_its_budget() -> None:
    e, _ = journaled()
    for i in range(300):  # many chains, long and short, delayed heads and leased ones
        put(e, "q", new(f"x{i}", key=f"k{i % 40}", delay_s=5 if i % 7 == 0 else 0))
    put(e, "q", *[f"p{i}" for i in range(200)], *[new("r", priority=1)] * 100)
    get(e, "q", "L", max=30)
    taken: list[int] = []
    job = e.purging("q")
    original = job._take

    def counted(q: Any, msg: Message, deliverable: bool) -> None:
        taken[-1] += 1
        original(q, msg, deliverable)

    job._take = counted  # type: ignore[method-assign]
    while True:
        taken.append(0)
        if job.step(0.0, 25):
            break
    assert max(taken) <= 25 + 1 and len(taken) > 20  # (a compact run may take one more)
    assert stats(e, "q")["ready"] == stats(e, "q")["delayed"] == 0


def test_what_comes_while_a_purge_runs_stays() -> None:
    e, journal = journaled()
    old = put(e, "q", *[f"o{i}" for i in range(20)], new("old-k", key="K"))
    job = e.purging("q")
    assert not job.step(0.0, 5)
    new_ids = put(e, "q", "n1", new("n2", key="K"), new("n3", priority=-1), new("n4", delay_s=9))
    while not job.step(0.0, 5):
        pass
    journal.assert_matches(e, 0.0)
    assert job.count == len(old)
    assert all(state_of(e, s) == "gone" for s in old)
    assert [state_of(e, s) for s in new_ids] == ["ready", "ready", "ready", "delayed"]
    got = [m.body for m in get(e, "q", "G", max=5)]
    assert got == [b"n3", b"n1", b"n2"]  # n2 heads its key now: the old K went


def test_a_redrive_in_steps_moves_in_delivery_order_and_leaves_delayed_ones() -> None:
    e, journal = journaled(max_attempts=1)
    bodies = ["a", "b", "c", "d", "e", "f"]
    for body, key, priority in zip(
        bodies, ["K", None, "K", None, "J", "J"], [0, 2, 0, 1, 0, 0], strict=True
    ):
        put(e, "q", new(body, key=key, priority=priority))
        (msg,) = get(e, "q", "D")
        assert e.nack(0.0, "D", msg.seq)  # dead-lettered
    (delayed,) = put(e, "q.dead", new("later", delay_s=60))
    job = e.redriving("q")
    while not job.step(0.0, 1):
        journal.assert_matches(e, 0.0)
    assert job.count == 6 and state_of(e, delayed) == "delayed"
    order = [m.body.decode() for m in get(e, "q", "C", max=10)]
    assert order == ["a", "e", "d", "b"]  # by priority, then order; keys one at a time
    assert stats(e, "q")["redriven"] == 6 and stats(e, "q.dead")["ready"] == 0


def test_a_job_on_a_queue_deleted_meanwhile_ends() -> None:
    e, journal = journaled()
    put(e, "q", *[f"m{i}" for i in range(50)], new("k", key="K", priority=1))
    job = e.purging("q")
    assert not job.step(0.0, 10)
    e.delete(0.0, "q")
    assert job.step(0.0, 10) is True and job.finished
    journal.assert_matches(e, 0.0)
    assert e.totals()["messages"] == 0


class Untouchable(PagedDict[int, Message]):
    """The engine's messages, which a queue operation must not walk."""

    def __init__(self, messages: PagedDict[int, Message]) -> None:
        super().__init__(by_id=True)
        self.update({seq: messages[seq] for seq in messages})

    def _refuse(self, *args: object) -> Any:
        raise AssertionError("a pass over every message of the engine")

    __iter__ = values = _refuse


@pytest.mark.parametrize("op", ["peek", "purge", "redrive", "delete"])
@pytest.mark.interpreted("swaps the engine's message index for one that refuses to be walked")
def test_queue_operations_never_walk_every_message_of_the_engine(op: str) -> None:
    e = make_engine(max_attempts=1)
    put(e, "big", *[new("x", priority=1, key=f"k{i}") for i in range(100)])
    put_one(e, "small", new("s", delay_s=5))
    put(e, "small", "t", new("u", key="U"))
    (dead,) = get(e, "small", "D")
    assert e.nack(0.0, "D", dead.seq)
    e._messages = Untouchable(e._messages)
    if op == "peek":
        for state in (None, State.READY, State.DELAYED, State.LEASED):
            e.peek("small", state, 10)
        assert len(e.peek("small", None, 10)) == 2
    elif op == "purge":
        assert e.purge(0.0, "small") == 2
    elif op == "redrive":
        assert e.redrive(0.0, "small") == 1
    else:
        assert e.delete(0.0, "small", dead=True) == 3
    assert stats(e, "big")["ready"] == 100


def test_peek_of_a_big_queue_looks_at_its_top_not_its_size() -> None:
    e = make_engine()
    ids = put(e, "q", *[new(f"m{i}", priority=(i * 7919) % 1000) for i in range(5000)])
    first = sorted(zip([(i * 7919) % 1000 for i in range(5000)], ids, strict=True))[:5]
    assert [(m.priority, m.seq) for m in e.peek("q", State.READY, 5)] == first
    assert [(m.priority, m.seq) for m in e.peek("q", None, 5)] == first
    assert isinstance(e.purging("q"), Sliced) and isinstance(e.purging("q"), Purge)


def test_a_delete_in_steps_purges_first_then_deletes_what_is_left() -> None:
    e, journal = journaled(max_attempts=1)
    put(e, "q", *[f"m{i}" for i in range(30)], new("k", key="K", delay_s=9))
    (leased,) = get(e, "q", "L", lease_s=600)
    put(e, "x", "dead")
    (dead,) = get(e, "x", "D")
    e.nack(0.0, "D", dead.seq)  # x.dead holds one
    job = e.deleting("q", dead=False)
    steps = 0
    while not job.step(0.0, 4):
        steps += 1
        journal.assert_matches(e, 0.0)
        assert e.find_queue("q") is not None  # it stays until the last step
    assert steps > 3 and job.count == 31 and e.find_queue("q") is None
    assert state_of(e, leased.seq) == "gone"
    journal.assert_matches(e, 0.0)
    with pytest.raises(NotFound):
        e.deleting("q")
    both = e.deleting("x", dead=True)
    assert both.step(0.0) and both.count == 1 and e.queue_names() == []


def test_the_deadline_heap_is_compacted_a_slice_at_a_time_and_stays_right_meanwhile() -> None:
    e = make_engine()
    put(e, "gone", *[new("d", delay_s=100.0 + i) for i in range(3 * MOVE_STEP)])
    assert e.purge(0.0, "gone") == 3 * MOVE_STEP  # every entry stale now
    heap = e._deadlines
    assert len(heap.old) > MOVE_STEP  # the first slice began: the rest is still to see
    (soon,) = put(e, "q", new("s", delay_s=50.0))  # pushed meanwhile, into the new heap
    assert e.next_deadline() == 50.0
    for _ in range(10):  # each call that settles moves one more slice
        e.advance(1.0)
    assert not heap.old and len(heap) == 1
    e.advance(50.0)
    assert state_of(e, soon) == "ready"


def test_the_compact_index_is_collected_a_slice_at_a_time_and_finds_ids_meanwhile() -> None:
    e = make_engine()
    for i in range(3 * SCAN_STEP):  # every put to another queue starts a run
        put(e, f"q{i % 2}", "x")
    (kept,) = put(e, "q2", "kept")
    e.purge(0.0, "q0")
    e.purge(0.0, "q1")  # their runs hold nothing now: the next settles collect them
    index = e._compact
    assert index._scan is not None  # begun, not done
    assert state_of(e, kept) == "ready"  # found meanwhile
    (late,) = put(e, "q3", "late")  # noted meanwhile: kept
    for _ in range(10):
        e.advance(1.0)
    assert index._scan is None and len(index.firsts) <= 3
    assert state_of(e, kept) == state_of(e, late) == "ready"
