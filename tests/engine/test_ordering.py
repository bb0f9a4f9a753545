"""Delivery order: priority first (lower first), then enqueue order; a released
message keeps its original place."""

from __future__ import annotations

from tests.engine.helpers import bodies, drain_bodies, get, make_engine, new, put


def test_fifo_within_default_priority() -> None:
    e = make_engine()
    put(e, "q", "a", "b", "c")
    assert bodies(get(e, "q", max=3)) == ["a", "b", "c"]


def test_lower_priority_value_first_then_enqueue_order() -> None:
    e = make_engine()
    put(
        e,
        "q",
        new("p0-a"),
        new("p5", priority=5),
        new("p-3", priority=-3),
        new("p0-b"),
        new("p-3-b", priority=-3),
        new("pmin", priority=-(2**31)),
        new("pmax", priority=2**31 - 1),
    )
    assert bodies(get(e, "q", max=10)) == ["pmin", "p-3", "p-3-b", "p0-a", "p0-b", "p5", "pmax"]


def test_priority_applies_across_separate_puts() -> None:
    e = make_engine()
    put(e, "q", "a")
    put(e, "q", new("urgent", priority=-1))
    put(e, "q", new("later", priority=1))
    put(e, "q", "b")
    assert drain_bodies(e, "q") == ["urgent", "a", "b", "later"]


def test_get_takes_at_most_max_and_leaves_the_rest_in_order() -> None:
    e = make_engine()
    put(e, "q", "a", "b", "c", "d")
    assert bodies(get(e, "q", max=2)) == ["a", "b"]
    assert bodies(get(e, "q", "B", max=1)) == ["c"]
    assert bodies(get(e, "q", "C", max=5)) == ["d"]
    assert get(e, "q", max=5) == []


def test_nacked_message_keeps_its_original_place() -> None:
    e = make_engine()
    a, _b, _c = put(e, "q", "a", "b", "c")
    assert bodies(get(e, "q")) == ["a"]
    e.nack(0, "A", a)
    assert bodies(get(e, "q", max=3)) == ["a", "b", "c"]


def test_released_message_goes_before_later_fresh_messages_but_after_earlier_ones() -> None:
    e = make_engine()
    put(e, "q", "a", "b", "c", "d")
    got = get(e, "q", max=3)  # a, b, c leased; d still ready
    assert bodies(got) == ["a", "b", "c"]
    e.nack(0, "A", got[1].seq)  # b back
    put(e, "q", "e")  # a fresh message after the release
    e.nack(0, "A", got[2].seq)  # c back
    e.nack(0, "A", got[0].seq)  # a back last, but it is first in the queue
    assert drain_bodies(e, "q", "B") == ["a", "b", "c", "d", "e"]


def test_released_and_fresh_messages_mix_across_priorities() -> None:
    e = make_engine()
    put(
        e,
        "q",
        new("n1", priority=-1),
        new("z1"),
        new("p1", priority=1),
        new("z2"),
        new("n2", priority=-1),
    )
    got = get(e, "q", max=5)
    assert bodies(got) == ["n1", "n2", "z1", "z2", "p1"]
    by_body = {m.body.decode(): m.seq for m in got}
    put(e, "q", new("z3"), new("n3", priority=-1), new("p1b", priority=1))
    for name in ("p1", "z2", "n2", "z1"):
        e.nack(0, "A", by_body[name])
    put(e, "q", new("z4"))
    assert drain_bodies(e, "q", "B") == ["n2", "n3", "z1", "z2", "z3", "z4", "p1", "p1b"]


def test_order_is_per_queue() -> None:
    e = make_engine()
    put(e, "q1", new("a", priority=5))
    put(e, "q2", new("b", priority=-5))
    assert bodies(get(e, "q1")) == ["a"]
    assert bodies(get(e, "q2")) == ["b"]
