"""Every state change reaches the journal once, after it is applied, in order."""

from __future__ import annotations

from broker.config import Config
from broker.engine import Engine
from tests.engine.helpers import FIRST_SEQ, get, new, put, seqs
from tests.engine.replay import ReplayJournal


def make() -> tuple[Engine, ReplayJournal]:
    journal = ReplayJournal()
    return Engine(Config(), FIRST_SEQ, journal), journal


def test_every_kind_of_change_is_journaled_in_order() -> None:
    e, j = make()
    a, b, c = put(e, "q", new("a", max_attempts=1), "b", new("c", delay_s=5))
    get(e, "q", max=2, lease_s=10)
    e.ack(0, "A", b)
    e.nack(0, "A", a)
    e.advance(5)
    e.redrive(5, "q")
    e.purge(5, "q")
    assert j.events == [
        ("put", [a, b, c]),
        ("lease", [a, b]),
        ("ack", [b]),
        ("dead", [a]),
        ("redrive", [a]),
        ("purge", [c, a]),
    ]
    j.assert_matches(e, 10)


def test_release_by_expiry_and_disconnect_is_journaled() -> None:
    e, j = make()
    a, b = put(e, "q", "a", "b")
    get(e, "q", "A", lease_s=1)
    get(e, "q", "B", lease_s=100)
    e.advance(1)
    e.disconnect(2, "B")
    assert j.events[-2:] == [("release", [a]), ("release", [b])]
    j.assert_matches(e, 10)


def test_the_ack_that_frees_a_key_is_journaled_before_the_lease_it_allows() -> None:
    e, j = make()
    k1, k2 = put(e, "q", new("k1", key="K"), new("k2", key="K"))
    get(e, "q", "A")
    assert e.get(0, "q", "W", 1, 30, wait_s=10, token="w") is None
    e.ack(1, "A", k1)
    assert j.events[-2:] == [("ack", [k1]), ("lease", [k2])]
    j.assert_matches(e, 10)


def test_the_dead_letter_that_frees_a_key_is_journaled_before_the_lease_it_allows() -> None:
    e, j = make()
    k1, k2 = put(e, "q", new("k1", key="K", max_attempts=1), new("k2", key="K"))
    get(e, "q", "A")
    assert e.get(0, "q", "W", 1, 30, wait_s=10, token="w") is None
    assert e.nack(1, "A", k1) is True
    assert j.events[-2:] == [("dead", [k1]), ("lease", [k2])]
    j.assert_matches(e, 10)


def test_a_put_is_journaled_before_the_lease_to_a_waiter() -> None:
    e, j = make()
    assert e.get(0, "q", "W", 1, 30, wait_s=10, token="w") is None
    (a,) = put(e, "q", "a")
    assert j.events == [("put", [a]), ("lease", [a])]
    assert seqs(e.take_deliveries()[0].messages) == [a]
    j.assert_matches(e, 10)
