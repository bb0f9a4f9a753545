"""Delays: never deliverable before the delay ends, deliverable at and after it."""

from __future__ import annotations

from tests.engine.helpers import bodies, get, make_engine, new, put, put_one, state_of, stats


def test_delayed_message_is_not_deliverable_before_its_delay_ends() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("d", delay_s=10), now=100)
    assert state_of(e, seq) == "delayed"
    assert e.next_deadline() == 110
    e.advance(109.999)
    assert get(e, "q", now=109.999) == []
    assert state_of(e, seq) == "delayed"
    e.advance(110)
    assert state_of(e, seq) == "ready"
    assert bodies(get(e, "q", now=110)) == ["d"]


def test_delayed_message_is_deliverable_after_a_late_advance() -> None:
    e = make_engine()
    put(e, "q", new("d", delay_s=1))
    e.advance(500)
    assert bodies(get(e, "q", now=500)) == ["d"]


def test_get_alone_does_not_end_a_delay() -> None:
    """Only advance() moves time forward for deadlines; GET must not deliver early."""
    e = make_engine()
    put(e, "q", new("d", delay_s=1))
    assert get(e, "q", now=0.5) == []


def test_zero_delay_is_ready_at_once() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("d", delay_s=0.0))
    assert state_of(e, seq) == "ready"
    assert e.next_deadline() is None


def test_next_deadline_is_the_earliest_delay() -> None:
    e = make_engine()
    put(e, "q", new("a", delay_s=30), new("b", delay_s=10), new("c", delay_s=20))
    assert e.next_deadline() == 10
    e.advance(10)
    assert e.next_deadline() == 20
    e.advance(20)
    assert e.next_deadline() == 30
    e.advance(30)
    assert e.next_deadline() is None


def test_a_delayed_message_keeps_its_enqueue_place_when_it_becomes_ready() -> None:
    e = make_engine()
    put(e, "q", new("a", delay_s=5), new("b"), new("c"))
    assert bodies(get(e, "q")) == ["b"]
    e.advance(5)
    assert bodies(get(e, "q", max=5, now=5)) == ["a", "c"]


def test_delay_counts_in_stats() -> None:
    e = make_engine()
    put(e, "q", new("a", delay_s=5), new("b"))
    s = stats(e, "q")
    assert (s["ready"], s["delayed"], s["leased"]) == (1, 1, 0)
    e.advance(5)
    s = stats(e, "q", now=5)
    assert (s["ready"], s["delayed"], s["leased"]) == (2, 0, 0)
