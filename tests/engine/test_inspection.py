"""Read-only views: PEEK, per-owner counts, and the expiry / dead-letter events for logs."""

from __future__ import annotations

from broker.engine import State
from tests.engine.helpers import bodies, get, make_engine, new, put, seqs, stats


def test_peek_of_an_unknown_queue_is_empty_and_creates_nothing() -> None:
    e = make_engine()
    assert e.peek("nowhere", None, 10) == []
    assert e.find_queue("nowhere") is None


def test_peek_lists_every_held_message_in_queue_order_and_changes_nothing() -> None:
    e = make_engine()
    put(
        e,
        "q",
        new("k1", key="K"),
        new("k2", key="K", priority=-1),
        new("late", delay_s=5),
        new("p1", priority=1),
        "z",
    )
    (leased,) = get(e, "q", max=1)  # k2 is held back by k1, so k1 goes out first
    assert leased.body == b"k1"
    before = [(m.seq, m.state, m.attempts) for m in e.peek("q", None, 10)]
    assert bodies(e.peek("q", None, 10)) == ["k2", "k1", "late", "z", "p1"]
    assert bodies(e.peek("q", None, 2)) == ["k2", "k1"]
    assert [(m.seq, m.state, m.attempts) for m in e.peek("q", None, 10)] == before
    s = stats(e, "q")
    assert (s["ready"], s["delayed"], s["leased"]) == (3, 1, 1)


def test_peek_by_state() -> None:
    e = make_engine()
    put(e, "q", new("d-late", delay_s=9), new("d-soon", delay_s=2), "r1", new("r0", priority=-1))
    put(e, "q", "a", "b")
    get(e, "q", "A", max=1, lease_s=50)  # r0
    get(e, "q", "B", max=1, lease_s=10)  # r1
    assert bodies(e.peek("q", State.READY, 10)) == ["a", "b"]
    assert bodies(e.peek("q", State.DELAYED, 10)) == ["d-soon", "d-late"]
    assert bodies(e.peek("q", State.LEASED, 10)) == ["r1", "r0"]  # soonest deadline first
    assert bodies(e.peek("q", State.LEASED, 1)) == ["r1"]
    assert e.peek("q", State.READY, 0) == []


def test_peek_of_a_state_with_no_messages_is_empty() -> None:
    e = make_engine()
    put(e, "q", "a")
    assert e.peek("q", State.LEASED, 5) == []
    assert e.peek("q", State.DELAYED, 5) == []


def test_leases_and_waits_of_an_owner() -> None:
    e = make_engine()
    assert (e.leases_of("A"), e.waits_of("A")) == (0, 0)
    put(e, "q", "a", "b", "c")
    got = get(e, "q", "A", max=2)
    assert e.get(0, "empty", "A", 1, 30, wait_s=5, token=1) is None
    assert e.get(0, "empty2", "A", 1, 30, wait_s=5, token=2) is None
    assert (e.leases_of("A"), e.waits_of("A"), e.leases_of("B")) == (2, 2, 0)
    e.ack(0, "A", seqs(got)[0])
    e.advance(5)
    assert (e.leases_of("A"), e.waits_of("A")) == (1, 0)
    e.disconnect(6, "A")
    assert (e.leases_of("A"), e.waits_of("A")) == (0, 0)


def test_take_events_counts_expiries_and_dead_letters_since_the_last_call() -> None:
    e = make_engine()
    assert e.take_events() == {}
    put(e, "q", new("a", max_attempts=1), "b", "c")
    put(e, "r", "x")
    got = get(e, "q", "A", max=3, lease_s=5)
    get(e, "r", "A", lease_s=5)
    e.nack(1, "A", got[0].seq)  # a: dead-lettered by a NACK
    e.ack(1, "A", got[2].seq)
    e.advance(5)  # b and x expire
    assert e.take_events() == {
        ("q", "dead_lettered"): 1,
        ("q", "expired"): 1,
        ("r", "expired"): 1,
    }
    assert e.take_events() == {}
    (b,) = get(e, "q", "B", lease_s=1, now=5)
    e.advance(6)
    assert b.attempts == 2 and e.take_events() == {("q", "expired"): 1}
