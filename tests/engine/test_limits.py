"""Batch PUT is all or nothing; queue length, memory and body limits; GET's byte budget;
ACK of many ids."""

from __future__ import annotations

import pytest

from broker.engine import AckResult, Engine
from broker.errors import MemoryLimit, QueueFull, TooLarge
from tests.engine.helpers import FIRST_SEQ, bodies, get, make_engine, new, put, seqs, stats


def assert_empty(e: Engine, queue: str) -> None:
    q = e.find_queue(queue)
    if q is not None:
        s = e.queue_stats(q, 0)
        assert (s["ready"], s["delayed"], s["leased"], s["bytes"], s["put"]) == (0, 0, 0, 0, 0)
    assert e.totals()["messages"] == 0
    assert e.totals()["bytes"] == 0
    assert e.next_deadline() is None


def test_a_body_of_exactly_max_body_is_accepted() -> None:
    e = make_engine(max_body=4)
    assert len(put(e, "q", "1234")) == 1


def test_one_too_large_body_fails_the_whole_batch() -> None:
    e = make_engine(max_body=4)
    with pytest.raises(TooLarge) as info:
        put(e, "q", "ok", new("delayed", delay_s=5), "12345", "ok2")
    assert "max-body" in info.value.message
    assert_empty(e, "q")
    assert put(e, "q", "next") == [FIRST_SEQ]  # no id was used up


def test_queue_full_counts_ready_delayed_and_leased_messages() -> None:
    e = make_engine(max_queue_length=3)
    put(e, "q", "a", new("b", delay_s=5))
    get(e, "q")
    put(e, "q", "c")
    with pytest.raises(QueueFull):
        put(e, "q", "d")
    assert stats(e, "q")["put"] == 3
    assert len(put(e, "other", "x", "y", "z")) == 3  # the limit is per queue


def test_a_batch_that_would_overflow_the_queue_stores_nothing() -> None:
    e = make_engine(max_queue_length=3)
    put(e, "q", "a")
    with pytest.raises(QueueFull) as info:
        put(e, "q", "b", "c", "d")
    assert "max-queue-length" in info.value.message
    assert stats(e, "q")["ready"] == 1
    assert len(put(e, "q", "b", "c")) == 2


def test_acking_frees_room_in_a_full_queue() -> None:
    e = make_engine(max_queue_length=1)
    put(e, "q", "a")
    (msg,) = get(e, "q")
    with pytest.raises(QueueFull):
        put(e, "q", "b")
    e.ack(0, "A", msg.seq)
    put(e, "q", "b")


def test_memory_limit_counts_bodies_in_every_queue_and_stores_nothing() -> None:
    e = make_engine(max_memory=10)
    put(e, "q1", "12345")
    put(e, "q2", "123")
    with pytest.raises(MemoryLimit) as info:
        put(e, "q1", "1", "12")  # 5 + 3 + 3 = 11 > 10
    assert "max-memory" in info.value.message
    assert e.totals()["bytes"] == 8
    assert stats(e, "q1")["ready"] == 1
    put(e, "q1", "12")  # exactly 10 is fine
    assert e.totals()["bytes"] == 10


def test_memory_is_freed_by_ack_and_purge_but_not_by_dead_lettering() -> None:
    e = make_engine(max_memory=6)
    (a,) = put(e, "q", new("aaa", max_attempts=1))
    put(e, "q", "bbb")
    get(e, "q")
    e.nack(0, "A", a)  # to q.dead: still held
    with pytest.raises(MemoryLimit):
        put(e, "q", "c")
    assert e.purge(0, "q") == 1
    put(e, "q", "ccc")
    with pytest.raises(MemoryLimit):
        put(e, "q", "d")


def test_get_stops_once_the_bodies_reach_the_reply_budget() -> None:
    e = make_engine(max_reply_bytes=10)
    put(e, "q", "aaaa", "bbbb", "cccc", "dddd")
    assert bodies(get(e, "q", max=10)) == ["aaaa", "bbbb", "cccc"]  # 12 >= 10: stop
    e2 = make_engine(max_reply_bytes=10)
    put(e2, "q", "aaaaa", "bbbbb", "ccccc")
    assert bodies(get(e2, "q", max=10)) == ["aaaaa", "bbbbb"]  # exactly 10: stop


def test_a_body_larger_than_the_reply_budget_is_still_delivered_alone() -> None:
    e = make_engine(max_reply_bytes=10, max_body=100)
    put(e, "q", "x" * 50, "y")
    assert bodies(get(e, "q", max=10)) == ["x" * 50]
    assert bodies(get(e, "q", max=10)) == ["y"]


def test_a_waiter_is_served_within_the_reply_budget_and_the_next_waiter_gets_the_rest() -> None:
    e = make_engine(max_reply_bytes=4)
    assert e.get(0, "q", "W1", 10, 30, wait_s=5, token=1) is None
    assert e.get(0, "q", "W2", 10, 30, wait_s=5, token=2) is None
    put(e, "q", "aa", "bb", "cc")
    assert {d.token: bodies(d.messages) for d in e.take_deliveries()} == {
        1: ["aa", "bb"],
        2: ["cc"],
    }


def test_ack_many_reports_each_id() -> None:
    e = make_engine()
    a, b, c, d = put(e, "q", "a", "b", "c", "d")
    assert seqs(get(e, "q", "A", max=2)) == [a, b]
    assert seqs(get(e, "q", "B")) == [c]
    unknown = 1
    result = e.ack_many(0, "A", [b, c, d, unknown, a, b])
    assert result == AckResult(acked=2, not_leased=[c, d, b], not_found=[unknown])
    s = stats(e, "q")
    assert (s["acked"], s["leased"], s["ready"]) == (2, 1, 1)


def test_ack_many_of_nothing() -> None:
    e = make_engine()
    assert e.ack_many(0, "A", []) == AckResult(0, [], [])
