"""REMOVE, REDRIVE with ids and DELETE in the engine: what goes, what stays, what is said."""

from __future__ import annotations

import pytest

from broker.config import Config
from broker.engine import Engine, Picked
from broker.errors import NotFound
from tests.engine.helpers import drain_bodies, get, held, make_engine, new, put, state_of, stats
from tests.engine.replay import ReplayJournal

UNKNOWN = 7  # below every id the engine hands out


def journaled(**overrides: object) -> tuple[Engine, ReplayJournal]:
    journal = ReplayJournal()
    return Engine(Config(**overrides), 1000, journal), journal  # type: ignore[arg-type]


def dead_letter(e: Engine, queue: str, *bodies: str) -> list[int]:
    """Put messages with one attempt and NACK each: they end in ``<queue>.dead``."""
    out = []
    for body in bodies:
        put(e, queue, new(body, max_attempts=1))
        (msg,) = get(e, queue, "D")
        assert e.nack(0.0, "D", msg.seq)
        out.append(msg.seq)
    return out


def test_remove_deletes_ready_and_delayed_messages_and_lists_the_others() -> None:
    e, journal = journaled()
    plain, keyed, delayed, leased, other = put(
        e, "q", "a", new("b", key="k"), new("c", delay_s=60.0), "d"
    ) + put(e, "other", "e")
    get(e, "q")  # leases "a" (plain, first)
    got = e.remove(0.0, "q", [keyed, delayed, plain, other, UNKNOWN, keyed, leased])
    assert got == Picked(3, [plain], [other, UNKNOWN, keyed])
    assert [state_of(e, s) for s in (keyed, delayed, leased)] == ["gone", "gone", "gone"]
    assert state_of(e, plain) == "leased" and state_of(e, other) == "ready"
    s = stats(e, "q")
    assert (s["ready"], s["delayed"], s["leased"], s["bytes"]) == (0, 0, 1, 1)
    assert e.totals()["bytes"] == 2
    assert journal.events[-1] == ("purge", [keyed, delayed, leased])
    journal.assert_matches(e, 0.0)


def test_removing_a_compact_message_from_the_middle_keeps_the_order_of_the_rest() -> None:
    e, journal = journaled()
    ids = put(e, "q", *"abcde")
    assert e.remove(0.0, "q", [ids[1], ids[3]]).done == 2
    assert drain_bodies(e, "q") == ["a", "c", "e"]
    assert e.lookup(ids[1]) is None
    journal.assert_matches(e, 0.0)


def test_removing_the_head_of_a_key_lets_the_next_one_go() -> None:
    e, journal = journaled()
    first, _, _ = put(e, "q", new("1", key="k"), new("2", key="k"), new("3", key="k"))
    assert e.remove(0.0, "q", [first]).done == 1
    assert drain_bodies(e, "q") == ["2", "3"]
    journal.assert_matches(e, 0.0)
    e2, _ = journaled()
    _, second, _ = put(e2, "q", new("1", key="k"), new("2", key="k"), new("3", key="k"))
    (msg,) = get(e2, "q")  # "1" leased: "2" and "3" wait behind it
    assert e2.remove(0.0, "q", [second]).done == 1
    assert get(e2, "q", "B") == []
    e2.ack(0.0, "A", msg.seq)
    assert [m.body for m in get(e2, "q", "B", max=5)] == [b"3"]


def test_removing_wakes_a_waiter_when_it_frees_a_key() -> None:
    e = make_engine()
    blocker, waiting = put(e, "q", new("1", key="k", delay_s=60.0), new("2", key="k"))
    assert e.get(0.0, "q", "W", 1, 30.0, 10.0, token="w") is None
    e.remove(0.0, "q", [blocker])
    (d,) = e.take_deliveries()
    assert (d.token, [m.seq for m in d.messages]) == ("w", [waiting])


def test_remove_in_an_unknown_queue_is_not_found() -> None:
    e = make_engine()
    with pytest.raises(NotFound):
        e.remove(0.0, "nope", [UNKNOWN])


def test_redrive_with_ids_moves_only_those_attempts_reset() -> None:
    e, journal = journaled()
    a, b, c = dead_letter(e, "q", "a", "b", "c")
    (leased,) = get(e, "q.dead", "X")  # "a" is leased by a consumer of q.dead
    got = e.redrive_ids(0.0, "q", [c, leased.seq, UNKNOWN, c])
    assert got == Picked(1, [a], [UNKNOWN, c])
    assert [(m.seq, m.queue.name, m.attempts) for m in held(e) if m.seq in (b, c)] == [
        (b, "q.dead", 1),
        (c, "q", 0),
    ]
    assert stats(e, "q")["redriven"] == 1
    journal.assert_matches(e, 0.0)


def test_redrive_with_ids_moves_a_delayed_dead_letter_too() -> None:
    e, journal = journaled()
    (seq,) = dead_letter(e, "q", "a")
    (msg,) = get(e, "q.dead", "X")
    e.nack(0.0, "X", msg.seq, 60.0)  # never dead-lettered again: delayed in q.dead
    assert e.redrive_ids(0.0, "q", [seq]) == Picked(1, [], [])
    assert state_of(e, seq) == "ready" and e.next_deadline() is None
    assert drain_bodies(e, "q") == ["a"]
    journal.assert_matches(e, 0.0)


def test_redrive_with_ids_without_a_dead_letter_queue_finds_nothing() -> None:
    e = make_engine()
    assert e.redrive_ids(0.0, "q", [UNKNOWN]) == Picked(0, [], [UNKNOWN])
    assert e.find_queue("q") is None


def test_delete_takes_every_message_ends_waiters_and_later_acks_are_not_found() -> None:
    e, journal = journaled()
    (dead,) = dead_letter(e, "q", "x")
    ready, delayed, keyed = put(e, "q", "a", new("b", delay_s=60.0), new("c", key="k"))
    put(e, "q", "d")
    leased = get(e, "q", max=3)  # "a", "c" and "d"
    assert leased[0].seq == ready
    e.ack(0.0, "A", ready)  # acked: in the history
    assert e.get(0.0, "w", "W", 1, 30.0, 5.0, token="other") is None
    assert e.get(0.0, "q", "W", 1, 30.0, 5.0, token="mine") is None
    assert e.delete(0.0, "q") == 3  # b (delayed), c and d (leased)
    assert [(d.token, d.messages) for d in e.take_deliveries()] == [("mine", [])]
    for seq in (ready, keyed, delayed):
        with pytest.raises(NotFound):
            e.ack(0.0, "A", seq)
    assert e.lookup(ready) is None  # the acked history went with it
    assert e.find_queue("q") is None and state_of(e, dead) == "ready"  # q.dead stays
    assert e.leases_of("A") == 0 and e.holds("A") is False
    assert e.next_deadline() == 5.0  # only the other waiter's
    assert e.totals() == {"queues": 1, "messages": 1, "leased": 0, "bytes": 1}  # q.dead
    journal.assert_matches(e, 0.0)


def test_delete_with_dead_takes_the_dead_letter_queue_too() -> None:
    e, journal = journaled()
    dead_letter(e, "q", "a", "b")
    put(e, "q", "c")
    assert e.delete(0.0, "q", dead=True) == 3
    assert e.queue_names() == []
    journal.assert_matches(e, 0.0)


def test_a_deleted_queue_comes_back_fresh() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"max_length": 1, "rate": 1.0})
    e.pause(0.0, "q")
    put(e, "q", "a")
    e.delete(0.0, "q")
    with pytest.raises(NotFound):
        e.delete(0.0, "q")
    put(e, "q", "b", "c")  # no max_length any more
    s = stats(e, "q")
    assert (s["ready"], s["put"], s["paused"]) == (2, 2, False)
    assert len(get(e, "q", max=5)) == 2  # nor a rate limit


def test_delete_of_a_rate_limited_queue_leaves_no_live_token_deadline() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 1.0})
    put(e, "q", "a", "b")
    get(e, "q")
    assert e.get(0.0, "q", "W", 1, 30.0, 50.0, token="w") is None
    assert e.next_deadline() == 1.0
    e.delete(0.0, "q")
    assert e.next_deadline() is None
