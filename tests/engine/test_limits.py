"""Batch PUT is all or nothing; queue length, memory and body limits; GET's byte budget;
ACK of many ids."""

from __future__ import annotations

import pytest

from broker.engine import AckResult, Engine
from broker.engine.footprint import (
    ACKED,
    COMPACT,
    DEDUP,
    HEADER,
    HEADERS,
    KEY,
    MESSAGE,
    QUEUE,
    WAITER,
)
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


def test_the_footprint_counts_bodies_and_what_is_kept_with_them() -> None:
    e = make_engine()
    assert e.footprint() == 0
    put(e, "q", "12345")
    one_queue = QUEUE + COMPACT + 5
    assert e.footprint() == one_queue
    put(e, "q", new("k", key="key", delay_s=60))
    keyed = MESSAGE + 1 + KEY + 3
    assert e.footprint() == one_queue + keyed
    (msg,) = get(e, "q")  # the plain one gets an object
    assert e.footprint() == QUEUE + MESSAGE + 5 + keyed
    e.ack(0, "A", msg.seq)  # gone, but remembered as acked
    assert e.footprint() == QUEUE + keyed + ACKED
    assert e.get(0, "w", "W", 1, 30, 60, "t") is None  # a waiting GET on a name
    e.put_extended(0, "q", [new("d")], ["dedup-id"], [{"h": "vv"}])
    with_headers = MESSAGE + 1 + HEADERS + 1 + 2 + HEADER
    expected = QUEUE + keyed + ACKED + WAITER + with_headers + DEDUP
    assert e.footprint() == expected
    assert e.purge(0, "q") == 2
    assert e.footprint() == QUEUE + ACKED + WAITER + DEDUP
    assert e.cancel_waits("W", None) == 1  # (parked without a key: None names it)
    assert e.footprint() == QUEUE + ACKED + DEDUP


def test_memory_limit_refuses_what_would_pass_it_and_stores_nothing() -> None:
    two = QUEUE + 2 * (COMPACT + 5)
    e = make_engine(max_memory=two + 20, acked_history=0)  # two such PUTs, not three
    with pytest.raises(MemoryLimit):
        put(e, "q", "x" * 200)  # its queue would be made: that is counted too
    put(e, "q", "12345")
    put(e, "q", "12345")
    with pytest.raises(MemoryLimit) as info:
        put(e, "q", "1")
    assert "max-memory" in info.value.message and str(e.footprint()) in info.value.message
    with pytest.raises(MemoryLimit):
        put(e, "other", "1")  # in every queue; and it makes no queue
    assert e.totals() == {"queues": 1, "messages": 2, "leased": 0, "bytes": 10}
    (msg,) = get(e, "q")
    e.ack(0, "A", msg.seq)  # acking frees room (less what the acked id keeps)
    put(e, "q", "1")
    with pytest.raises(MemoryLimit):
        put(e, "q", new("x", key="k"))  # a message object and its key take more


def test_memory_is_freed_by_ack_and_purge_but_not_by_dead_lettering() -> None:
    e = make_engine(max_memory=2 * QUEUE + MESSAGE + 3 + 30)
    (a,) = put(e, "q", new("aaa", max_attempts=1))
    get(e, "q")
    held = e.footprint()
    e.nack(0, "A", a)  # to q.dead: still held, and q.dead is a queue too
    assert e.footprint() == held + QUEUE
    with pytest.raises(MemoryLimit):
        put(e, "q", "c")
    assert e.purge(0, "q.dead") == 1
    put(e, "q", "c")


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
