"""Disconnect: every lease of the owner goes back at once, its waiters are cancelled."""

from __future__ import annotations

from broker.engine import Message
from tests.engine.helpers import bodies, get, make_engine, new, put, seqs, state_of, stats


def test_disconnect_releases_every_lease_of_the_owner_and_no_other() -> None:
    e = make_engine()
    a1, a2, b1 = put(e, "q1", "a1", "a2", "b1")
    (c1,) = put(e, "q2", "c1")
    assert seqs(get(e, "q1", "A", max=2)) == [a1, a2]
    assert seqs(get(e, "q1", "B")) == [b1]
    assert seqs(get(e, "q2", "A")) == [c1]
    assert e.disconnect(1, "A") == 3
    assert [state_of(e, s) for s in (a1, a2, b1, c1)] == ["ready", "ready", "leased", "ready"]
    assert stats(e, "q1", 1)["released_on_disconnect"] == 2
    assert stats(e, "q2", 1)["released_on_disconnect"] == 1
    assert stats(e, "q1", 1)["leased"] == 1
    found = e.lookup(a1)
    assert isinstance(found, Message) and found.owner is None


def test_disconnect_of_an_owner_without_leases_releases_nothing() -> None:
    e = make_engine()
    put(e, "q", "m")
    get(e, "q", "A")
    assert e.disconnect(0, "nobody") == 0
    assert stats(e, "q")["leased"] == 1


def test_a_disconnect_counts_as_an_attempt() -> None:
    e = make_engine()
    (seq,) = put(e, "q", new("m", max_attempts=2))
    get(e, "q", "A")
    e.disconnect(0, "A")
    assert [m.attempts for m in get(e, "q", "B")] == [2]
    e.disconnect(0, "B")
    assert state_of(e, seq) == "ready"
    found = e.lookup(seq)
    assert isinstance(found, Message) and found.queue.name == "q.dead"
    assert stats(e, "q")["dead_lettered"] == 1


def test_released_messages_keep_their_places() -> None:
    e = make_engine()
    put(e, "q", "a", "b", "c", "d")
    assert bodies(get(e, "q", "A", max=3)) == ["a", "b", "c"]
    e.disconnect(0, "A")
    assert bodies(get(e, "q", "B", max=10)) == ["a", "b", "c", "d"]


def test_all_leases_go_back_before_waiters_are_served() -> None:
    """A waiting consumer gets the best released message, not the first one released."""
    e = make_engine()
    put(e, "q", new("first-low", priority=5), new("second-high", priority=-5))
    assert bodies(get(e, "q", "A", max=2)) == ["second-high", "first-low"]
    assert e.get(0, "q", "W", 1, 30, wait_s=10, token="w") is None
    e.disconnect(1, "A")
    (delivery,) = e.take_deliveries()
    assert bodies(delivery.messages) == ["second-high"]


def test_disconnect_cancels_the_owners_waiters_without_a_delivery() -> None:
    e = make_engine()
    assert e.get(0, "q", "A", 1, 30, wait_s=10, token="t1") is None
    assert e.get(0, "q2", "A", 1, 30, wait_s=10, token="t2") is None
    assert e.get(0, "q", "B", 1, 30, wait_s=10, token="t3") is None
    assert e.waiting_on("q") == 2
    e.disconnect(1, "A")
    assert e.take_deliveries() == []
    assert e.waiting_on("q") == 1
    assert e.waiting_on("q2") == 0
    put(e, "q", "m", now=2)
    put(e, "q2", "m2", now=2)
    (delivery,) = e.take_deliveries()
    assert (delivery.token, delivery.owner, bodies(delivery.messages)) == ("t3", "B", ["m"])
    e.advance(100)
    assert e.take_deliveries() == []  # the cancelled waits never time out either
    assert state_of(e, put(e, "q3", "x")[0]) == "ready"


def test_a_disconnecting_owner_never_gets_its_own_released_messages() -> None:
    e = make_engine()
    put(e, "q", "m")
    get(e, "q", "A")
    assert e.get(0, "q", "A", 1, 30, wait_s=10, token="mine") is None
    assert e.get(0, "q", "B", 1, 30, wait_s=10, token="theirs") is None
    e.disconnect(1, "A")
    (delivery,) = e.take_deliveries()
    assert (delivery.token, bodies(delivery.messages)) == ("theirs", ["m"])
