"""Leases: one owner at a time, attempts, expiry, TOUCH, NACK, ACK and their errors."""

from __future__ import annotations

import pytest

from broker.engine import AckedRecord, Engine, Message, State
from broker.errors import NotFound, NotLeased
from tests.engine.helpers import bodies, get, make_engine, new, put, put_one, state_of, stats

UNKNOWN = 1  # below FIRST_SEQ: never an id of these engines


def leased(e: Engine, seq: int) -> Message:
    msg = e.lookup(seq)
    assert isinstance(msg, Message)
    return msg


def test_first_delivery_counts_one_attempt_and_each_redelivery_one_more() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    assert leased(e, seq).attempts == 0
    for attempt in range(1, 4):
        got = get(e, "q", "A")
        assert [(m.seq, m.attempts) for m in got] == [(seq, attempt)]
        e.nack(0, "A", seq)


def test_a_leased_message_is_not_delivered_to_anyone_else() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    assert bodies(get(e, "q", "A")) == ["m"]
    assert get(e, "q", "B", max=10) == []
    assert get(e, "q", "A", max=10) == []
    msg = leased(e, seq)
    assert (msg.state, msg.owner) == (State.LEASED, "A")


def test_lease_expiry_releases_and_counts_expired() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=5, now=1)
    assert e.next_deadline() == 6
    e.advance(5.999)
    assert state_of(e, seq) == "leased"
    e.advance(6)
    assert state_of(e, seq) == "ready"
    assert stats(e, "q", 6)["expired"] == 1
    got = get(e, "q", "B", now=6)
    assert [(m.seq, m.attempts) for m in got] == [(seq, 2)]


def test_ack_after_expiry_is_not_leased_even_before_redelivery() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=5)
    e.advance(5)
    with pytest.raises(NotLeased):
        e.ack(5, "A", seq)
    get(e, "q", "B", now=5)
    with pytest.raises(NotLeased):
        e.ack(5, "A", seq)
    e.ack(5, "B", seq)
    assert isinstance(e.lookup(seq), AckedRecord)


def test_touch_extends_the_lease_and_the_old_deadline_does_not_expire_it() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=5)
    e.touch(4, "A", seq, 5)
    assert e.next_deadline() == 9
    e.advance(5)  # the first deadline's heap entry is stale now
    assert state_of(e, seq) == "leased"
    assert stats(e, "q", 5)["expired"] == 0
    e.advance(8.9)
    assert state_of(e, seq) == "leased"
    e.advance(9)
    assert state_of(e, seq) == "ready"
    assert stats(e, "q", 9)["expired"] == 1


def test_touch_can_shorten_a_lease() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=30)
    e.touch(1, "A", seq, 1)
    assert e.next_deadline() == 2
    e.advance(2)
    assert state_of(e, seq) == "ready"


def test_touch_to_the_same_deadline_expires_once() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=5)
    e.touch(0, "A", seq, 5)
    e.advance(5)
    assert stats(e, "q", 5)["expired"] == 1
    assert leased(e, seq).state == State.READY


def test_nack_releases_now_and_counts_nacked() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A")
    assert e.nack(0, "A", seq) is False
    assert state_of(e, seq) == "ready"
    s = stats(e, "q")
    assert (s["nacked"], s["ready"], s["leased"]) == (1, 1, 0)
    assert e.next_deadline() is None  # the lease deadline is gone


@pytest.mark.parametrize("delay_s", [0.05, 5])
def test_nack_with_delay_hides_the_message_until_the_delay_ends(delay_s: float) -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=100)
    e.nack(10, "A", seq, delay_s=delay_s)
    assert state_of(e, seq) == "delayed"
    assert e.next_deadline() == 10 + delay_s
    e.advance(10 + delay_s * 0.9)
    assert get(e, "q", "B", now=10 + delay_s * 0.9) == []
    e.advance(10 + delay_s)
    got = get(e, "q", "B", now=10 + delay_s)
    assert [(m.seq, m.attempts) for m in got] == [(seq, 2)]


def test_nack_with_a_delay_equal_to_the_old_lease_deadline() -> None:
    """Two heap entries at the same instant for one message: it must become ready once."""
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A", lease_s=10)
    e.nack(5, "A", seq, delay_s=5)
    e.advance(10)
    s = stats(e, "q", 10)
    assert (s["ready"], s["delayed"], s["leased"], s["expired"]) == (1, 0, 0, 0)
    assert bodies(get(e, "q", "B", now=10)) == ["m"]


@pytest.mark.parametrize("op", ["ack", "nack", "touch"])
def test_only_the_owner_may_ack_nack_or_touch(op: str) -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A")
    with pytest.raises(NotLeased):
        call(e, op, "B", seq)
    assert leased(e, seq).owner == "A"
    call(e, op, "A", seq)


@pytest.mark.parametrize("op", ["ack", "nack", "touch"])
def test_an_unknown_id_is_not_found(op: str) -> None:
    e = make_engine()
    put(e, "q", "m")
    with pytest.raises(NotFound):
        call(e, op, "A", UNKNOWN)


@pytest.mark.parametrize("op", ["ack", "nack", "touch"])
def test_a_message_never_delivered_is_not_leased(op: str) -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    delayed = put_one(e, "q", new("d", delay_s=5))
    for target in (seq, delayed):
        with pytest.raises(NotLeased):
            call(e, op, "A", target)


def test_ack_deletes_and_a_second_ack_is_not_leased_until_the_id_is_forgotten() -> None:
    e = make_engine(acked_history=1)
    seq, other = put(e, "q", "m", "n")
    get(e, "q", "A", max=2)
    e.ack(0, "A", seq)
    assert isinstance(e.lookup(seq), AckedRecord)
    s = stats(e, "q")
    assert (s["acked"], s["leased"], s["ready"], s["bytes"]) == (1, 1, 0, 1)
    for op in ("ack", "nack", "touch"):
        with pytest.raises(NotLeased, match="acked already"):
            call(e, op, "A", seq)
    assert e.ack_many(0, "A", [seq]).not_leased == [seq]
    e.ack(0, "A", other)  # evicts seq from the history of one
    assert e.lookup(seq) is None
    with pytest.raises(NotFound):
        e.ack(0, "A", seq)
    assert e.ack_many(0, "A", [seq]).not_found == [seq]


def test_owners_are_compared_by_equality_not_by_name_alone() -> None:
    e = make_engine()
    a, b = object(), object()
    seq = put_one(e, "q", "m")
    get(e, "q", a)
    with pytest.raises(NotLeased):
        e.ack(0, b, seq)
    e.ack(0, a, seq)


def call(e: Engine, op: str, owner: object, seq: int) -> None:
    if op == "ack":
        e.ack(0, owner, seq)
    elif op == "nack":
        e.nack(0, owner, seq)
    else:
        e.touch(0, owner, seq, 10)


# One GET's leases share one deadline entry (a LeaseBatch); each member still
# expires on its own terms.


def test_a_batch_lease_expires_only_the_members_still_leased_until_its_deadline() -> None:
    e = make_engine()
    a, b, c, d = put(e, "q", "a", "b", "c", "d")
    assert [m.seq for m in get(e, "q", "A", max=4, lease_s=10)] == [a, b, c, d]
    e.ack(1, "A", a)  # gone
    e.touch(2, "A", b, 20)  # now due at 22, with an entry of its own
    e.nack(3, "A", c)  # ready again
    assert e.next_deadline() == 10
    e.advance(10)
    assert [state_of(e, s) for s in (a, b, c, d)] == ["acked", "leased", "ready", "ready"]
    assert stats(e, "q", 10)["expired"] == 1
    assert e.next_deadline() == 22
    e.advance(22)
    assert state_of(e, b) == "ready"
    assert stats(e, "q", 22)["expired"] == 2
    assert e.next_deadline() is None


def test_acking_a_whole_batch_leaves_no_deadline() -> None:
    e = make_engine()
    ids = put(e, "q", *[str(i) for i in range(64)])
    get(e, "q", "A", max=64, lease_s=10)
    assert e.ack_many(1, "A", ids).acked == 64
    assert e.next_deadline() is None
    e.advance(100)
    assert stats(e, "q", 100)["expired"] == 0


def test_a_member_whose_delay_ends_at_the_batch_deadline_is_handled_once() -> None:
    e = make_engine(max_attempts=10)
    a, b = put(e, "q", "a", "b")
    get(e, "q", "A", max=2, lease_s=10)
    e.nack(4, "A", a, delay_s=6)  # delayed until 10: the batch's instant too
    e.advance(10)
    assert [state_of(e, s) for s in (a, b)] == ["ready", "ready"]
    s = stats(e, "q", 10)
    assert (s["expired"], s["nacked"], s["ready"], s["delayed"], s["leased"]) == (1, 1, 2, 0, 0)
    got = get(e, "q", "B", max=2, now=10)
    assert [(m.seq, m.attempts) for m in got] == [(a, 2), (b, 2)]


def test_a_message_released_and_leased_again_until_the_same_instant_expires_once() -> None:
    e = make_engine(max_attempts=10)
    a, b = put(e, "q", "a", "b")
    get(e, "q", "A", max=2, lease_s=10)  # both due at 10
    e.nack(0, "A", a)
    assert [m.seq for m in get(e, "q", "B", max=1, lease_s=10)] == [a]  # due at 10 again
    e.advance(10)
    s = stats(e, "q", 10)
    assert (s["expired"], s["ready"], s["leased"]) == (2, 2, 0)
    assert [(m.seq, m.attempts) for m in get(e, "q", "C", max=2, now=10)] == [(a, 3), (b, 2)]


def test_a_disconnect_releases_a_batch_and_its_deadline_dies() -> None:
    e = make_engine()
    put(e, "q", "a", "b", "c")
    get(e, "q", "A", max=3, lease_s=10)
    assert e.disconnect(1, "A") == 3
    assert e.next_deadline() is None
    assert stats(e, "q", 1)["ready"] == 3
