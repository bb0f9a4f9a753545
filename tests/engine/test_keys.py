"""Keys: one leased message per (queue, key), strict enqueue order per key."""

from __future__ import annotations

from tests.engine.helpers import bodies, get, make_engine, new, put


def test_a_leased_key_blocks_its_other_messages_but_not_other_keys() -> None:
    e = make_engine()
    put(e, "q", new("k1", key="K"), new("k2", key="K"), new("j1", key="J"), new("u1"), new("u2"))
    assert bodies(get(e, "q", max=10)) == ["k1", "j1", "u1", "u2"]
    assert get(e, "q", "B", max=10) == []
    assert e.queue_stats(e.queue("q"), 0)["ready"] == 1  # k2 counts as ready, held back


def test_ack_of_the_head_makes_the_next_of_its_key_deliverable() -> None:
    e = make_engine()
    k1, k2, _k3 = put(e, "q", new("k1", key="K"), new("k2", key="K"), new("k3", key="K"))
    assert bodies(get(e, "q", max=3)) == ["k1"]
    e.ack(0, "A", k1)
    assert bodies(get(e, "q", "B", max=3)) == ["k2"]
    e.ack(0, "B", k2)
    assert bodies(get(e, "q", "C", max=3)) == ["k3"]


def test_key_order_beats_priority() -> None:
    """A later message of a key waits for the earlier ones even with a better priority."""
    e = make_engine()
    k1, _k2, _u = put(
        e, "q", new("k1", key="K", priority=5), new("k2", key="K", priority=-5), new("u")
    )
    assert bodies(get(e, "q", max=10)) == ["u", "k1"]
    e.ack(0, "A", k1)
    assert bodies(get(e, "q", max=10)) == ["k2"]


def test_a_nacked_head_is_delivered_again_before_the_rest_of_its_key() -> None:
    e = make_engine()
    k1, _k2 = put(e, "q", new("k1", key="K"), new("k2", key="K"))
    assert bodies(get(e, "q")) == ["k1"]
    e.nack(0, "A", k1)
    got = get(e, "q", "B", max=5)
    assert bodies(got) == ["k1"]
    assert got[0].attempts == 2


def test_an_expired_head_is_delivered_again_before_the_rest_of_its_key() -> None:
    e = make_engine()
    put(e, "q", new("k1", key="K"), new("k2", key="K"))
    assert bodies(get(e, "q", lease_s=5)) == ["k1"]
    e.advance(5)
    assert bodies(get(e, "q", "B", max=5, now=5)) == ["k1"]


def test_a_delayed_earlier_message_holds_back_later_ones_of_its_key() -> None:
    e = make_engine()
    put(e, "q", new("k1", key="K", delay_s=10), new("k2", key="K"), new("u"))
    assert bodies(get(e, "q", max=5)) == ["u"]
    e.advance(9.5)
    assert get(e, "q", "B", max=5, now=9.5) == []
    e.advance(10)
    got = get(e, "q", "B", max=5, now=10)
    assert bodies(got) == ["k1"]
    e.ack(10, "B", got[0].seq)
    assert bodies(get(e, "q", "B", max=5, now=10)) == ["k2"]


def test_a_later_message_whose_delay_ends_first_still_waits_for_the_earlier() -> None:
    e = make_engine()
    k1, _k2 = put(e, "q", new("k1", key="K"), new("k2", key="K", delay_s=1))
    assert bodies(get(e, "q")) == ["k1"]
    e.advance(2)
    assert get(e, "q", "B", now=2) == []
    e.ack(2, "A", k1)
    assert bodies(get(e, "q", "B", now=2)) == ["k2"]


def test_a_message_nacked_with_delay_holds_back_its_key() -> None:
    e = make_engine()
    k1, _k2 = put(e, "q", new("k1", key="K"), new("k2", key="K"))
    assert bodies(get(e, "q")) == ["k1"]
    e.nack(0, "A", k1, delay_s=5)
    assert get(e, "q", "B", max=5, now=1) == []
    e.advance(5)
    assert bodies(get(e, "q", "B", max=5, now=5)) == ["k1"]


def test_a_disconnect_gives_the_head_back_first() -> None:
    e = make_engine()
    put(e, "q", new("k1", key="K"), new("k2", key="K"))
    assert bodies(get(e, "q")) == ["k1"]
    e.disconnect(0, "A")
    assert bodies(get(e, "q", "B", max=5)) == ["k1"]


def test_keys_are_per_queue() -> None:
    e = make_engine()
    put(e, "q1", new("a", key="K"))
    put(e, "q2", new("b", key="K"))
    assert bodies(get(e, "q1")) == ["a"]
    assert bodies(get(e, "q2")) == ["b"]


def test_a_dead_lettered_head_unblocks_its_key() -> None:
    e = make_engine()
    k1, _k2 = put(e, "q", new("k1", key="K", max_attempts=1), new("k2", key="K"))
    assert bodies(get(e, "q")) == ["k1"]
    assert e.nack(0, "A", k1) is True
    assert bodies(get(e, "q", "B")) == ["k2"]


def test_unkeyed_messages_are_never_held_back() -> None:
    e = make_engine()
    put(e, "q", new("k1", key="K"), new("k2", key="K"), "u1", "u2")
    assert bodies(get(e, "q", max=1)) == ["k1"]
    assert bodies(get(e, "q", "B", max=5)) == ["u1", "u2"]


def test_many_keys_interleaved_each_in_order() -> None:
    e = make_engine()
    items = [new(f"{k}{i}", key=k) for i in range(20) for k in "ABC"]
    put(e, "q", *items)
    seen: dict[str, list[int]] = {"A": [], "B": [], "C": []}
    for _ in range(60):
        got = get(e, "q", "w", max=3)
        assert len({m.key for m in got}) == len(got), "two messages of one key leased at once"
        for m in got:
            assert m.key is not None
            seen[m.key].append(int(m.body[1:]))
            e.ack(0, "w", m.seq)
        if not got:
            break
    assert seen == {k: list(range(20)) for k in "ABC"}


def test_the_next_of_a_key_stays_hidden_while_its_own_delay_runs() -> None:
    e = make_engine()
    k1, _k2 = put(e, "q", new("k1", key="K"), new("k2", key="K", delay_s=10))
    assert bodies(get(e, "q")) == ["k1"]
    e.ack(1, "A", k1)
    assert get(e, "q", "B", now=1) == []
    e.advance(10)
    assert bodies(get(e, "q", "B", now=10)) == ["k2"]
