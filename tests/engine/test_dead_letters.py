"""Dead letters: releases past max_attempts move to <queue>.dead; REDRIVE moves back."""

from __future__ import annotations

import pytest

from broker.engine import Engine, Message, State
from tests.engine.helpers import bodies, get, make_engine, new, put, put_one, seqs, stats


def where(e: Engine, seq: int) -> tuple[str, str, int]:
    msg = e.lookup(seq)
    assert isinstance(msg, Message)
    return msg.queue.name, msg.state.name.lower(), msg.attempts


@pytest.mark.parametrize("how", ["nack", "nack-with-delay", "expiry", "disconnect"])
def test_release_at_max_attempts_moves_to_the_dead_queue(how: str) -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", max_attempts=2))
    for attempt in (1, 2):
        now = 10.0 * attempt
        e.advance(now)
        assert seqs(get(e, "q", "A", lease_s=5, now=now)) == [seq]
        if how == "nack":
            dead = e.nack(now, "A", seq)
            assert dead is (attempt == 2)
        elif how == "nack-with-delay":
            dead = e.nack(now, "A", seq, delay_s=1)
            assert dead is (attempt == 2)
        elif how == "expiry":
            e.advance(now + 5)
        else:
            e.disconnect(now, "A")
    assert where(e, seq) == ("q.dead", "ready", 2)
    s, d = stats(e, "q", 30), stats(e, "q.dead", 30)
    assert (s["ready"], s["delayed"], s["leased"], s["dead"], s["dead_lettered"]) == (0, 0, 0, 1, 1)
    assert (s["bytes"], d["bytes"], d["ready"], d["dead_lettered"]) == (0, 1, 1, 0)
    assert e.totals()["bytes"] == 1
    assert e.next_deadline() is None  # no stale timer for the moved message


def test_the_default_max_attempts_comes_from_the_config() -> None:
    e = make_engine(max_attempts=3)
    seq = put_one(e, "q", "m")
    for _ in range(3):
        assert seqs(get(e, "q")) == [seq]
        e.nack(0, "A", seq)
    assert where(e, seq) == ("q.dead", "ready", 3)


def test_a_dead_message_keeps_its_id_body_key_and_priority() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("body", key="K", priority=-3, max_attempts=1))
    get(e, "q")
    e.nack(0, "A", seq)
    got = get(e, "q.dead", "B")
    assert [(m.seq, m.body, m.key, m.priority, m.attempts) for m in got] == [
        (seq, b"body", "K", -3, 2)
    ]


def test_dead_queue_messages_are_never_dead_lettered_again() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", max_attempts=1))
    get(e, "q")
    e.nack(0, "A", seq)
    for i in range(5):
        now = 10.0 * i
        assert seqs(get(e, "q.dead", "B", lease_s=1, now=now)) == [seq]
        if i % 3 == 0:
            assert e.nack(now, "B", seq) is False
        elif i % 3 == 1:
            e.advance(now + 1)
        else:
            e.disconnect(now, "B")
    assert where(e, seq) == ("q.dead", "ready", 6)
    assert e.find_queue("q.dead.dead") is None
    assert stats(e, "q.dead", 50)["dead_lettered"] == 0


def test_a_message_put_straight_into_a_dead_queue_is_never_dead_lettered() -> None:
    e = make_engine()
    seq = put_one(e, "jobs.dead", new("m", max_attempts=1))
    get(e, "jobs.dead")
    assert e.nack(0, "A", seq) is False
    assert where(e, seq) == ("jobs.dead", "ready", 1)


def test_dead_messages_can_be_acked_in_the_dead_queue() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", max_attempts=1))
    get(e, "q")
    e.nack(0, "A", seq)
    get(e, "q.dead", "B")
    e.ack(0, "B", seq)
    assert stats(e, "q.dead")["acked"] == 1
    assert stats(e, "q")["dead"] == 0


def test_dead_messages_arrive_in_the_order_they_died() -> None:
    e = make_engine()
    a, b, c = put(e, "q", *(new(x, max_attempts=1) for x in "abc"))
    get(e, "q", max=3)
    for seq in (c, a, b):
        e.nack(0, "A", seq)
    assert bodies(get(e, "q.dead", max=3)) == ["c", "a", "b"]


def test_redrive_moves_ready_dead_messages_back_with_attempts_reset() -> None:
    e = make_engine()
    a, b = put(e, "q", new("a", max_attempts=1), new("b", max_attempts=1, priority=2))
    get(e, "q", max=2)
    e.nack(0, "A", a)
    e.nack(0, "A", b)
    put(e, "q", "fresh")
    assert e.redrive(1, "q") == 2
    assert where(e, a) == ("q", "ready", 0)
    assert where(e, b) == ("q", "ready", 0)
    s, d = stats(e, "q", 1), stats(e, "q.dead", 1)
    assert (s["redriven"], s["ready"], s["dead"], s["bytes"]) == (2, 3, 0, len("fresh") + 2)
    assert (d["redriven"], d["ready"], d["bytes"]) == (0, 0, 0)
    # at the end of the order for its priority, behind "fresh"; priority kept
    got = get(e, "q", "B", max=3, now=1)
    assert bodies(got) == ["fresh", "a", "b"]
    assert [m.attempts for m in got] == [1, 1, 1]
    # max_attempts is kept: one more release kills "a" again
    assert e.nack(1, "B", a) is True


def test_redrive_leaves_leased_and_delayed_dead_messages() -> None:
    e = make_engine()
    a, b, c = put(e, "q", *(new(x, max_attempts=1) for x in "abc"))
    get(e, "q", max=3)
    for seq in (a, b, c):
        e.nack(0, "A", seq)
    assert seqs(get(e, "q.dead", "B", max=2)) == [a, b]
    e.nack(0, "B", b, delay_s=10)
    assert e.redrive(0, "q") == 1
    assert [where(e, s)[:2] for s in (a, b, c)] == [
        ("q.dead", "leased"),
        ("q.dead", "delayed"),
        ("q", "ready"),
    ]
    e.advance(10)
    assert e.redrive(10, "q") == 1
    assert where(e, b) == ("q", "ready", 0)


def test_redrive_without_a_dead_queue_moves_nothing() -> None:
    e = make_engine()
    put(e, "q", "m")
    assert e.redrive(0, "q") == 0
    assert e.redrive(0, "nowhere") == 0
    assert stats(e, "q")["redriven"] == 0


def test_keyed_messages_keep_their_key_order_in_the_dead_queue() -> None:
    e = make_engine()
    k1, k2, k3 = put(e, "q", *(new(f"k{i}", key="K", max_attempts=1) for i in (1, 2, 3)))
    for seq in (k1, k2):
        assert seqs(get(e, "q")) == [seq]
        e.nack(0, "A", seq)
    assert seqs(get(e, "q")) == [k3]  # the key is free in q once k1 and k2 left
    got = get(e, "q.dead", "B", max=5)
    assert seqs(got) == [k1]  # one at a time per key in the dead queue too
    e.ack(0, "B", k1)
    assert seqs(get(e, "q.dead", "B", max=5)) == [k2]


def test_a_redriven_keyed_message_waits_behind_its_key_in_the_target_queue() -> None:
    e = make_engine()
    k1 = put_one(e, "q", new("k1", key="K", max_attempts=1))
    get(e, "q")
    e.nack(0, "A", k1)
    k2, k3 = put(e, "q", new("k2", key="K"), new("k3", key="K"))
    assert seqs(get(e, "q")) == [k2]
    assert e.redrive(0, "q") == 1
    assert get(e, "q", "B", max=5) == []  # k2 leased: k3 and k1 wait
    e.ack(0, "A", k2)
    assert seqs(get(e, "q", "B", max=5)) == [k3]
    e.ack(0, "B", k3)
    assert seqs(get(e, "q", "B", max=5)) == [k1]


def test_redrive_of_a_dead_key_chain_with_a_leased_head() -> None:
    e = make_engine()
    k1, k2, k3 = put(e, "q", *(new(f"k{i}", key="K", max_attempts=1) for i in (1, 2, 3)))
    for seq in (k1, k2, k3):
        get(e, "q")
        e.nack(0, "A", seq)
    assert seqs(get(e, "q.dead", "B")) == [k1]
    assert e.redrive(0, "q") == 2
    assert seqs(get(e, "q", "C", max=5)) == [k2]
    e.ack(0, "C", k2)
    assert seqs(get(e, "q", "C", max=5)) == [k3]
    e.ack(0, "B", k1)
    assert stats(e, "q.dead")["ready"] == 0
    found = e.lookup(k3)
    assert isinstance(found, Message) and found.state == State.LEASED


def test_messages_dying_together_reach_the_dead_queue_in_queue_order() -> None:
    e = make_engine(max_attempts=1)
    names = [f"m{i}" for i in range(8)]
    put(e, "q", *names)
    assert bodies(get(e, "q", "A", max=8, lease_s=5)) == names
    e.disconnect(1, "A")
    assert bodies(get(e, "q.dead", "B", max=8, now=1)) == names
    put(e, "r", "x", "y", now=1)
    get(e, "r", "C", max=1, lease_s=4, now=1)  # x expires at 5
    get(e, "r", "A", max=1, lease_s=4, now=1)  # y expires at 5 too
    e.advance(5)
    assert bodies(get(e, "r.dead", "B", max=3, now=5)) == ["x", "y"]
