"""The compact form of never-delivered plain messages (compact.py): every way of
reaching such a message by id or by queue sees it exactly as if it had an object,
and it leaves the form in its place in the queue."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker.config import Config
from broker.engine import Engine, Message, State
from broker.errors import NotFound, NotLeased
from tests.engine.helpers import (
    FIRST_SEQ,
    bodies,
    drain_bodies,
    get,
    held,
    make_engine,
    new,
    put,
    put_one,
    seqs,
    state_of,
    stats,
)
from tests.engine.replay import ReplayJournal


def compact_count(e: Engine, queue: str) -> int:
    q = e.find_queue(queue)
    assert q is not None
    return q.compact.n


def test_only_plain_never_delivered_messages_are_compact() -> None:
    e = make_engine(max_attempts=5)
    put(
        e,
        "q",
        "plain",
        new("same-attempts", max_attempts=5),
        new("keyed", key="K"),
        new("delayed", delay_s=5),
        new("urgent", priority=-1),
        new("other-attempts", max_attempts=2),
    )
    put(e, "q.dead", "put-straight-into-a-dead-letter-queue")
    assert compact_count(e, "q") == 2
    assert compact_count(e, "q.dead") == 0
    assert e.totals()["messages"] == 7
    assert stats(e, "q")["ready"] == 5 and stats(e, "q")["delayed"] == 1


def test_a_never_delivered_message_is_found_by_id() -> None:
    e = make_engine(max_attempts=4)
    seq = put_one(e, "q", "hello", now=2.0)
    found = e.lookup(seq)
    assert isinstance(found, Message)
    assert (found.seq, found.queue.name, found.body, found.state) == (
        seq,
        "q",
        b"hello",
        State.READY,
    )
    assert (found.attempts, found.max_attempts, found.priority, found.key) == (0, 4, 0, None)
    assert (found.put_at, found.order, found.owner) == (2.0, seq, None)
    assert e.lookup(seq + 1) is None
    assert e.lookup(FIRST_SEQ - 1) is None


def test_a_lookup_does_not_take_a_message_out_of_the_compact_form() -> None:
    e = make_engine()
    a, b = put(e, "q", "a", "b")
    assert state_of(e, b) == "ready"
    assert compact_count(e, "q") == 2
    (leased,) = get(e, "q")
    assert leased.seq == a and compact_count(e, "q") == 1
    found = e.lookup(a)
    assert found is leased  # from its first lease on, the live record itself


def test_ack_nack_touch_of_a_never_delivered_id_say_not_leased() -> None:
    e = make_engine()
    (seq,) = put(e, "q", "a")
    with pytest.raises(NotLeased, match="is not leased by this connection"):
        e.ack(0, "A", seq)
    with pytest.raises(NotLeased, match="is not leased by this connection"):
        e.nack(0, "A", seq)
    with pytest.raises(NotLeased, match="is not leased by this connection"):
        e.touch(0, "A", seq, 10)
    with pytest.raises(NotFound):
        e.ack(0, "A", seq + 1)
    result = e.ack_many(0, "A", [seq, seq + 1])
    assert (result.acked, result.not_leased, result.not_found) == (0, [seq], [seq + 1])
    assert bodies(get(e, "q")) == ["a"]  # nothing changed


def test_compact_messages_and_the_priority_heap_deliver_in_queue_order() -> None:
    e = make_engine()
    put(
        e,
        "q",
        "a",
        new("urgent", priority=-1),
        "b",
        new("keyed", key="K"),
        "c",
        new("late", priority=2),
        "d",
    )
    assert bodies(e.peek("q", None, 10)) == ["urgent", "a", "b", "keyed", "c", "d", "late"]
    assert bodies(e.peek("q", State.READY, 3)) == ["urgent", "a", "b"]
    assert drain_bodies(e, "q") == ["urgent", "a", "b", "keyed", "c", "d", "late"]


def test_a_released_message_goes_back_before_the_compact_ones_put_after_it() -> None:
    e = make_engine()
    a, b, c = put(e, "q", "a", "b", "c")
    assert seqs(get(e, "q", max=2)) == [a, b]
    e.nack(0, "A", b)
    e.nack(0, "A", a)
    assert compact_count(e, "q") == 1
    assert bodies(e.peek("q", None, 10)) == ["a", "b", "c"]
    assert seqs(get(e, "q", "B", max=10)) == [a, b, c]
    assert [m.attempts for m in e.peek("q", State.LEASED, 10)] == [2, 2, 1]


def test_a_message_released_into_an_empty_queue_keeps_its_place_before_later_puts() -> None:
    e = make_engine()
    a = put_one(e, "q", "a")
    get(e, "q")
    b, c = put(e, "q", "b", "c", now=1)
    e.nack(1, "A", a)
    assert seqs(get(e, "q", "B", max=10, now=1)) == [a, b, c]


def test_oldest_ready_age_counts_compact_and_released_messages() -> None:
    e = make_engine()
    a = put_one(e, "q", "a", now=0)
    get(e, "q", now=0)
    put(e, "q", "b", now=5)
    assert stats(e, "q", 10)["oldest_ready_age"] == 5.0  # b, compact
    e.nack(6, "A", a)
    assert stats(e, "q", 10)["oldest_ready_age"] == 10.0  # a, back in its place
    get(e, "q", "B", now=10)
    assert stats(e, "q", 10)["oldest_ready_age"] == 5.0
    get(e, "q", "B", now=10)
    assert stats(e, "q", 10)["oldest_ready_age"] is None


def test_purge_removes_compact_and_object_messages_and_journals_each_once() -> None:
    journal = ReplayJournal()
    e = Engine(Config(), FIRST_SEQ, journal)
    leased = put_one(e, "q", "leased")
    get(e, "q")
    a, d, k, u, b, p = put(
        e,
        "q",
        "aa",
        new("d", delay_s=5),
        new("k", key="K"),
        new("u", priority=-1),
        "bbb",
        new("p", priority=1),
    )
    assert compact_count(e, "q") == 2
    assert e.purge(0, "q") == 6
    kind, purged_ids = journal.events[-1]
    assert kind == "purge" and sorted(purged_ids) == sorted([u, a, d, k, b, p])
    assert [state_of(e, s) for s in (leased, a, b, d, k, u, p)] == ["leased"] + ["gone"] * 6
    s = stats(e, "q")
    assert (s["ready"], s["delayed"], s["leased"], s["purged"], s["bytes"]) == (0, 0, 1, 6, 6)
    assert s["oldest_ready_age"] is None
    assert e.totals() == {"queues": 1, "messages": 1, "leased": 1, "bytes": 6}
    journal.assert_matches(e, 0)
    c = put_one(e, "q", "c")  # the queue works on after a purge
    assert seqs(get(e, "q", "B", max=5)) == [c]


def test_redrive_puts_dead_letters_after_the_compact_messages_of_the_queue() -> None:
    e = make_engine(max_attempts=1)
    dead = put_one(e, "q", "dead")
    get(e, "q")
    assert e.nack(0, "A", dead)
    extra = put_one(e, "q.dead", "put-to-the-dead-letter-queue")
    a, b = put(e, "q", "a", "b")
    assert e.redrive(0, "q") == 2
    assert [m.seq for m in e.peek("q", None, 10)] == [a, b, dead, extra]
    assert [m.attempts for m in e.peek("q", None, 10)] == [0, 0, 0, 0]
    assert drain_bodies(e, "q") == ["a", "b", "dead", "put-to-the-dead-letter-queue"]


def test_peek_and_info_see_compact_messages_without_changing_them() -> None:
    e = make_engine()
    a, b = put(e, "q", "a", "b", now=1)
    before = [(m.seq, m.state, m.attempts, m.put_at) for m in e.peek("q", None, 10)]
    assert before == [(a, State.READY, 0, 1), (b, State.READY, 0, 1)]
    assert e.peek("q", State.LEASED, 10) == [] and e.peek("q", State.DELAYED, 10) == []
    assert compact_count(e, "q") == 2
    assert seqs(get(e, "q", max=10)) == [a, b]


def test_ids_are_found_in_the_right_queue_however_puts_interleave() -> None:
    e = make_engine()
    by_queue: dict[str, list[int]] = {"x": [], "y": [], "z": []}
    for i in range(3000):
        name = "xyz"[i % 3] if i % 7 else "x"
        by_queue[name] += put(e, name, f"{name}{i}")
    for name, ids in by_queue.items():
        for seq in ids[::97]:
            found = e.lookup(seq)
            assert isinstance(found, Message) and found.queue.name == name
    # drain x and y: their runs go stale and are collected on later calls
    for name in "xy":
        for msg in get(e, name, max=10_000):
            e.ack(0, "A", msg.seq)
    put(e, "z", "last")
    assert len(e._compact) <= 2 * e.totals()["messages"] + 1024
    for seq in by_queue["z"]:
        found = e.lookup(seq)
        assert isinstance(found, Message) and found.queue.name == "z"
    for seq in by_queue["x"][:50] + by_queue["y"][:50]:
        assert not isinstance(e.lookup(seq), Message)


def test_the_index_of_runs_stays_bounded_by_the_live_messages() -> None:
    e = make_engine(acked_history=0)
    for _ in range(20):
        for i in range(400):
            put(e, "xy"[i % 2], "m")  # one run per put: the worst case
        for name in "xy":
            for msg in get(e, name, max=10_000):
                e.ack(0, "A", msg.seq)
    assert e.totals()["messages"] == 0
    assert len(e._compact) <= 1024


def test_a_long_fifo_is_popped_and_trimmed_in_order() -> None:
    e = make_engine()
    ids = put(e, "q", *[f"m{i}" for i in range(10_000)])
    got: list[int] = []
    while msgs := get(e, "q", max=7):
        got += seqs(msgs)
        if len(got) % 700 == 0:
            rest = ids[len(got) :]
            assert isinstance(e.lookup(rest[0]), Message) and isinstance(
                e.lookup(rest[-1]), Message
            )
    assert got == ids
    assert stats(e, "q")["ready"] == 0 and compact_count(e, "q") == 0


def test_live_seqs_include_compact_messages_and_each_looks_up() -> None:
    e = make_engine()
    a, k = put(e, "q", "a", new("k", key="K"))
    b = put_one(e, "r", "b")
    assert sorted(e.live_seqs()) == [a, k, b]
    assert [(m.seq, m.body) for m in held(e)] == [(a, b"a"), (k, b"k"), (b, b"b")]


@dataclass
class Stored:
    """A message as a durable store gives it back (``StoredMessage``)."""

    seq: int
    queue: str = "q"
    body: bytes = b"body"
    key: str | None = None
    priority: int = 0
    max_attempts: int = 5
    put_wall: float = 100.0
    due_wall: float = 0.0
    attempts: int = 0
    order: int = 0
    headers: dict[str, str] | None = None


def test_restored_plain_messages_are_compact_and_keep_their_order() -> None:
    e = Engine(Config(max_attempts=5), first_seq=1)
    items = [
        Stored(10),
        Stored(11, queue="r"),
        Stored(12, put_wall=99.0),  # earlier than the one before it: kept as an object
        Stored(13),
        Stored(14, attempts=1),
        Stored(15, max_attempts=3),
        Stored(5, order=16),  # redriven: a new place in the queue
    ]
    e.restore_messages(0.0, items, clock_offset=100.0)
    assert compact_count(e, "q") == 2 and compact_count(e, "r") == 1
    assert [m.seq for m in e.peek("q", None, 10)] == [10, 12, 13, 14, 15, 5]
    found = e.lookup(13)
    assert isinstance(found, Message) and found.put_at == 0.0
    assert e.next_seq == 17
    assert [m.seq for m in get(e, "q", max=10)] == [10, 12, 13, 14, 15, 5]
