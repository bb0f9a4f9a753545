"""Dedup ids and headers in the engine: PUT stores a dedup id once per window, bounded.

Time is passed explicitly; nothing sleeps.
"""

from __future__ import annotations

from broker.engine import Engine, Message
from tests.engine.helpers import get, make_engine, new, stats
from tests.engine.replay import ReplayJournal


def put_dedup(
    e: Engine, queue: str, *pairs: tuple[str, str | None], now: float = 0.0
) -> tuple[list[int], list[int]]:
    """PUT (body, dedup id) pairs; returns each one's id and the duplicates' indexes."""
    items = [new(body) for body, _ in pairs]
    return e.put_extended(now, queue, items, [d for _, d in pairs], None)


def test_a_second_put_with_the_same_dedup_id_stores_nothing_and_answers_the_first_id() -> None:
    e = make_engine()
    (first,), dups = put_dedup(e, "q", ("a", "order-1"))
    assert dups == []
    (again,), dups = put_dedup(e, "q", ("b", "order-1"), now=10.0)
    assert (again, dups) == (first, [0])
    assert stats(e, "q")["ready"] == 1 and stats(e, "q")["put"] == 1
    assert e.dedup_totals() == {"dedup_ids": 1, "dedup_evicted": 0}


def test_the_window_counts_from_the_first_put_even_after_the_ack() -> None:
    e = make_engine(dedup_window_s=60.0)
    (first,), _ = put_dedup(e, "q", ("a", "x"), now=0.0)
    (msg,) = get(e, "q", now=1.0)
    e.ack(1.0, "A", msg.seq)
    assert put_dedup(e, "q", ("a", "x"), now=59.9) == ([first], [0])  # acked, still known
    (later,), dups = put_dedup(e, "q", ("a", "x"), now=60.0)  # the window ended at 60
    assert dups == [] and later != first
    assert put_dedup(e, "q", ("a", "x"), now=119.0) == ([later], [0])  # a new window


def test_dedup_ids_are_per_queue_and_ids_without_one_are_always_stored() -> None:
    e = make_engine()
    (a,), _ = put_dedup(e, "q", ("a", "same"))
    (b,), dups = put_dedup(e, "other", ("b", "same"))
    assert dups == [] and a != b
    ids, dups = put_dedup(e, "q", ("c", None), ("d", None))
    assert dups == [] and len(set(ids)) == 2


def test_a_batch_stores_a_repeated_dedup_id_once_and_lists_its_duplicates() -> None:
    e = make_engine()
    (known,), _ = put_dedup(e, "q", ("a", "k"))
    ids, dups = put_dedup(e, "q", ("x", "k"), ("y", "n"), ("z", "n"), ("w", None))
    assert dups == [0, 2]
    assert ids[0] == known and ids[1] == ids[2] and ids[3] not in (known, ids[1])
    assert stats(e, "q")["ready"] == 3


def test_a_batch_that_does_not_fit_stores_nothing_and_remembers_no_dedup_id() -> None:
    e = make_engine(max_queue_length=2)
    put_dedup(e, "q", ("a", "1"))
    try:
        put_dedup(e, "q", ("b", "2"), ("c", "3"))
    except Exception as exc:  # QueueFull
        assert type(exc).__name__ == "QueueFull"
    else:
        raise AssertionError("a batch past max_length was stored")
    assert e.dedup_totals()["dedup_ids"] == 1
    assert put_dedup(e, "q", ("b", "2"))[1] == []  # "2" was never remembered


def test_the_queue_window_in_force_at_the_first_put_decides() -> None:
    e = make_engine(dedup_window_s=300.0)
    (first,), _ = put_dedup(e, "q", ("a", "old"), now=0.0)
    e.configure(0.0, "q", {"dedup_window_s": 10.0})
    put_dedup(e, "q", ("b", "new"), now=1.0)
    assert put_dedup(e, "q", ("a", "old"), now=100.0) == ([first], [0])  # its 300 s hold
    assert put_dedup(e, "q", ("b", "new"), now=11.0)[1] == []  # its 10 s are over


def test_at_the_bound_the_oldest_id_is_forgotten_early_and_counted() -> None:
    e = make_engine(max_dedup_ids=3)
    firsts = [put_dedup(e, "q", (str(i), f"d{i}"), now=float(i))[0][0] for i in range(3)]
    put_dedup(e, "other", ("x", "d3"), now=3.0)  # the bound is over every queue
    assert e.dedup_totals() == {"dedup_ids": 3, "dedup_evicted": 1}
    assert put_dedup(e, "q", ("0", "d0"), now=4.0)[1] == []  # the oldest was forgotten
    assert put_dedup(e, "q", ("2", "d2"), now=4.0) == ([firsts[2]], [0])
    assert e.dedup_totals()["dedup_evicted"] == 2  # storing d0 again pushed d1 out


def test_the_bound_forgets_expired_ids_first_whatever_their_window() -> None:
    e = make_engine(max_dedup_ids=2)
    e.configure(0.0, "long", {"dedup_window_s": 1000.0})
    e.configure(0.0, "short", {"dedup_window_s": 1.0})
    (kept,), _ = put_dedup(e, "long", ("a", "L"), now=0.0)
    put_dedup(e, "short", ("b", "S"), now=0.5)
    put_dedup(e, "short", ("c", "S2"), now=5.0)  # S expired at 1.5: no early eviction
    assert e.dedup_totals() == {"dedup_ids": 2, "dedup_evicted": 0}
    assert put_dedup(e, "long", ("a", "L"), now=6.0) == ([kept], [0])


def test_expired_ids_are_dropped_lazily_by_later_puts() -> None:
    e = make_engine(dedup_window_s=1.0)
    for i in range(100):
        put_dedup(e, "q", ("a", f"d{i}"), now=0.0)
    assert e.dedup_totals()["dedup_ids"] == 100
    put_dedup(e, "q", ("a", "late"), now=2.0)
    assert e.dedup_totals()["dedup_ids"] == 1


def test_deleting_a_queue_forgets_its_dedup_ids() -> None:
    e = make_engine()
    (first,), _ = put_dedup(e, "q", ("a", "x"))
    put_dedup(e, "other", ("a", "x"))
    assert e.delete(0.0, "q") == 1
    assert e.dedup_totals()["dedup_ids"] == 1
    (again,), dups = put_dedup(e, "q", ("a", "x"))
    assert dups == [] and again != first


def test_stale_entries_of_deleted_queues_are_bounded() -> None:
    e = make_engine()
    for round_ in range(20):
        put_dedup(e, "q", *[("a", f"{round_}-{i}") for i in range(200)])
        e.delete(0.0, "q")
    assert e.dedup_totals()["dedup_ids"] == 0
    put_dedup(e, "q", ("a", "last"))
    assert e._dedup._entries <= 2 * e._dedup.n + 1024  # rebuilt once stale ones piled up


def test_headers_travel_with_the_message_and_make_it_an_object() -> None:
    journal = ReplayJournal()
    e = Engine(make_engine().config, 1000, journal)
    trace = {"traceparent": "00-abc-def-01"}
    ids, _ = e.put_extended(0.0, "q", [new("a"), new("b")], None, [trace, None])
    found = e.lookup(ids[0])
    assert isinstance(found, Message) and found.headers == trace
    plain = e.lookup(ids[1])
    assert isinstance(plain, Message) and plain.headers is None
    assert not e.find_queue("q").compact.n  # type: ignore[union-attr]  # a batch with headers
    got = get(e, "q", max=2)
    assert [m.headers for m in got] == [trace, None]
    journal.assert_matches(e, 0.0)
    assert journal.headers == {ids[0]: trace}


def test_acked_messages_keep_the_attempts_they_took_for_info() -> None:
    e = make_engine()
    (seq,) = e.put(0.0, "q", [new("a")])
    (msg,) = get(e, "q")
    e.nack(0.0, "A", msg.seq)
    (msg,) = get(e, "q")
    e.ack(0.0, "A", msg.seq)
    record = e.lookup(seq)
    assert record is not None and not isinstance(record, Message)
    assert (record.queue, record.attempts) == ("q", 2)
