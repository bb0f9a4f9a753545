"""Leases owned by receipts (the HTTP API's): one owner per delivery, made by the caller,
equal only to itself's nonce; the engine keeps no state for them once the lease ends."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

import pytest

from broker.backend.receipts import Receipt
from broker.engine import Engine, State
from broker.errors import NotLeased
from tests.engine.helpers import get, make_engine, new, put, put_one, seqs, state_of, stats


def receipts(peer: str = "client") -> tuple[Callable[[], object], list[Receipt]]:
    """A receipt maker, and the receipts it made (in order)."""
    made: list[Receipt] = []
    nonces = count(1)

    def make() -> Receipt:
        made.append(Receipt(next(nonces), peer))
        return made[-1]

    return make, made


def receive(e: Engine, queue: str, make: Callable[[], object], *, max: int = 1, now: float = 0.0, lease_s: float = 30.0) -> list[int]:  # fmt: skip
    return seqs(e.get(now, queue, "http", max, lease_s, receipts=make))


def test_each_message_is_leased_to_a_receipt_of_its_own() -> None:
    e = make_engine()
    a, b = put(e, "q", "a", "b")
    make, made = receipts()
    assert receive(e, "q", make, max=2) == [a, b]
    assert len(made) == 2 and made[0] != made[1]
    with pytest.raises(NotLeased):
        e.ack(0, made[1], a)  # the other message's receipt
    with pytest.raises(NotLeased):
        e.ack(0, "http", a)  # the owner that asked
    e.ack(0, Receipt(made[0].nonce), a)  # equal by nonce: a receipt read back from its text
    assert state_of(e, a) == "acked" and state_of(e, b) == "leased"


def test_a_receipt_from_an_earlier_delivery_is_stale() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    make, made = receipts()
    receive(e, "q", make, lease_s=5)
    e.advance(5)  # the lease expires: delivered again, to a new receipt
    assert receive(e, "q", make, now=5) == [seq]
    old, new_receipt = made
    for act in (
        lambda: e.ack(6, old, seq),
        lambda: e.nack(6, old, seq),
        lambda: e.touch(6, old, seq, 30),
    ):
        with pytest.raises(NotLeased):
            act()
    e.ack(6, new_receipt, seq)
    assert stats(e, "q", 6)["acked"] == 1


def test_connections_and_receipts_never_take_each_others_leases() -> None:
    e = make_engine()
    a, b = put(e, "q", "a", "b")
    make, made = receipts()
    assert receive(e, "q", make) == [a]
    assert seqs(get(e, "q", "tcp")) == [b]
    with pytest.raises(NotLeased):
        e.ack(0, "tcp", a)
    with pytest.raises(NotLeased):
        e.ack(0, made[0], b)
    assert e.disconnect(0, "http") == 0  # the owner that asked holds nothing
    assert e.disconnect(0, "tcp") == 1
    assert state_of(e, a) == "leased" and state_of(e, b) == "ready"


def test_no_state_is_kept_for_receipts() -> None:
    e = make_engine()
    make, made = receipts()
    for i in range(100):
        put(e, "q", "a", "b")
        receive(e, "q", make, max=2, now=i)
        e.ack(i, made[-2], made_seq(e, made[-2]))
        e.nack(i, made[-1], made_seq(e, made[-1]))
    assert e._owned == {}  # nothing per owner: receipts live in their message only
    assert not e.holds("http") and e.leases_of(made[-1]) == 0


def made_seq(e: Engine, receipt: Receipt) -> int:
    (msg,) = (m for m in e.peek("q", State.LEASED, 1000) if m.owner == receipt)
    return msg.seq


def test_a_waiting_receive_leases_to_receipts_when_served() -> None:
    e = make_engine()
    make, made = receipts()
    assert e.get(0, "q", "http", 2, 30.0, wait_s=10, token="t", receipts=make) is None
    a, b = put(e, "q", "a", "b", now=1)
    (delivery,) = e.take_deliveries()
    assert delivery.token == "t" and seqs(delivery.messages) == [a, b]
    assert [m.owner for m in delivery.messages] == made
    e.ack(1, made[1], b)
    assert e.disconnect(1, "http") == 0 and state_of(e, a) == "leased"


def test_unlease_gives_a_message_back_without_counting_its_attempt() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", max_attempts=1))
    make, made = receipts()
    receive(e, "q", make)
    e.unlease(1, made[0], seq)
    assert state_of(e, seq) == "ready" and stats(e, "q", 1)["released_on_disconnect"] == 1
    (msg,) = e.get(2, "q", "tcp", 1, 30.0) or []
    assert msg.attempts == 1  # not 2: the first delivery never reached its consumer
    with pytest.raises(NotLeased):
        e.unlease(2, made[0], seq)  # stale
    assert e.nack(2, "tcp", seq) is True  # its one attempt used: dead-lettered as usual


def test_ack_owned_acks_each_pair_and_names_the_others_by_index() -> None:
    e = make_engine()
    a, b, c = put(e, "q", "a", "b", "c")
    make, made = receipts()
    receive(e, "q", make, max=2)
    gone = e.lookup(c)
    assert gone is not None
    result = e.ack_owned(0, [(made[0], a), (made[0], b), (made[1], b), (made[1], b), (made[1], 1)])
    assert result.acked == 2
    assert result.not_leased == [1, 3]  # another message's receipt; then acked already
    assert result.not_found == [4]
    assert state_of(e, a) == state_of(e, b) == "acked" and state_of(e, c) == "ready"
