"""Waiting GETs: served in arrival order, woken by anything that makes a message
deliverable, ended by their timeout, by a disconnect or by end_all_waits."""

from __future__ import annotations

import pytest

from broker.engine import Delivery, Engine, Message, State, Waiter
from broker.engine.dispatch import REPLY_OVERHEAD, delivery_bytes
from broker.engine.message import headers_bytes
from broker.errors import BadRequest
from tests.engine.helpers import bodies, get, make_engine, new, put, put_one, stats


def wait(
    e: Engine,
    queue: str,
    owner: object,
    token: object,
    *,
    max: int = 1,
    lease_s: float = 30,
    wait_s: float = 10,
    now: float = 0,
    key: object = None,
) -> None:
    assert e.get(now, queue, owner, max, lease_s, wait_s, token, cancel_key=key) is None


def served(e: Engine) -> dict[object, list[str]]:
    """Deliveries taken now, as token -> bodies."""
    out: dict[object, list[str]] = {}
    for d in e.take_deliveries():
        assert d.token not in out, "one waiter completed twice"
        out[d.token] = bodies(d.messages)
    return out


def assert_no_waiter_beside_a_deliverable_message(e: Engine) -> None:
    for name in e.queue_names():
        q = e.queue(name)
        assert not (q.n_waiting and q.has_deliverable()), name


def test_get_with_wait_returns_at_once_when_something_is_deliverable() -> None:
    e = make_engine()
    put(e, "q", "m")
    assert bodies(e.get(0, "q", "A", 1, 30, wait_s=10, token="t")) == ["m"]
    assert e.take_deliveries() == []
    assert e.waiting_on("q") == 0


def test_get_without_wait_never_registers_a_waiter() -> None:
    e = make_engine()
    assert e.get(0, "q", "A", 1, 30) == []
    assert e.get(0, "q", "A", 1, 30, wait_s=0) == []
    assert e.waiting_on("q") == 0
    assert e.next_deadline() is None


def test_a_put_wakes_a_waiter_and_leases_to_it() -> None:
    e = make_engine()
    wait(e, "q", "W", "t", lease_s=7, now=1)
    assert e.waiting_on("q") == 1
    assert e.next_deadline() == 11
    seq = put_one(e, "q", "m", now=2)
    (d,) = e.take_deliveries()
    assert (d.token, d.owner, [m.seq for m in d.messages]) == ("t", "W", [seq])
    msg = d.messages[0]
    assert (msg.state, msg.owner, msg.attempts, msg.due_at) == (State.LEASED, "W", 1, 9)
    assert e.take_deliveries() == []  # taken once
    assert e.waiting_on("q") == 0
    assert e.next_deadline() == 9  # the wait's own deadline is gone
    e.ack(3, "W", seq)


def test_waiters_are_served_in_arrival_order_each_up_to_its_max() -> None:
    e = make_engine()
    wait(e, "q", "W1", "t1", max=2)
    wait(e, "q", "W2", "t2", max=1)
    wait(e, "q", "W3", "t3", max=5)
    put(e, "q", "a", "b", "c")
    assert served(e) == {"t1": ["a", "b"], "t2": ["c"]}
    assert e.waiting_on("q") == 1
    put(e, "q", "d")
    assert served(e) == {"t3": ["d"]}


def test_one_put_at_a_time_goes_to_the_waiters_in_turn() -> None:
    e = make_engine()
    for i in range(3):
        wait(e, "q", f"W{i}", i, max=10)
    order = []
    for body in "abc":
        put(e, "q", body)
        ((token, got),) = served(e).items()
        order.append((token, got))
    assert order == [(0, ["a"]), (1, ["b"]), (2, ["c"])]


def test_a_waiter_on_another_queue_is_not_woken() -> None:
    e = make_engine()
    wait(e, "q1", "W", "t")
    put(e, "q2", "m")
    assert e.take_deliveries() == []
    assert e.waiting_on("q1") == 1


def test_a_nack_wakes_a_waiter() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A")
    wait(e, "q", "W", "t")
    e.nack(1, "A", seq)
    assert served(e) == {"t": ["m"]}


def test_a_nack_with_delay_wakes_the_waiter_when_the_delay_ends() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", "A")
    wait(e, "q", "W", "t", wait_s=100)
    e.nack(1, "A", seq, delay_s=5)
    assert e.take_deliveries() == []
    e.advance(6)
    assert served(e) == {"t": ["m"]}


def test_a_lease_expiry_wakes_a_waiter() -> None:
    e = make_engine()
    put(e, "q", "m")
    get(e, "q", "A", lease_s=5)
    wait(e, "q", "W", "t", wait_s=100)
    e.advance(5)
    assert served(e) == {"t": ["m"]}


def test_the_end_of_a_delay_wakes_a_waiter() -> None:
    e = make_engine()
    put(e, "q", new("m", delay_s=5))
    wait(e, "q", "W", "t", wait_s=100)
    e.advance(4)
    assert e.take_deliveries() == []
    e.advance(5)
    assert served(e) == {"t": ["m"]}


def test_an_unblocked_key_wakes_a_waiter() -> None:
    e = make_engine()
    k1, _k2 = put(e, "q", new("k1", key="K"), new("k2", key="K"))
    get(e, "q", "A")
    wait(e, "q", "W", "t")
    assert_no_waiter_beside_a_deliverable_message(e)
    e.ack(1, "A", k1)
    assert served(e) == {"t": ["k2"]}


def test_a_redrive_wakes_a_waiter() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", max_attempts=1))
    get(e, "q", "A")
    e.nack(0, "A", seq)
    wait(e, "q", "W", "t")
    assert e.redrive(1, "q") == 1
    assert served(e) == {"t": ["m"]}


def test_a_dead_letter_wakes_a_waiter_on_the_dead_queue() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", max_attempts=1))
    get(e, "q", "A")
    wait(e, "q.dead", "W", "t")
    e.nack(0, "A", seq)
    assert served(e) == {"t": ["m"]}


def test_a_wait_times_out_with_an_empty_delivery() -> None:
    e = make_engine()
    wait(e, "q", "W", "t", wait_s=10, now=5)
    assert e.next_deadline() == 15
    e.advance(14.9)
    assert e.take_deliveries() == []
    e.advance(15)
    assert e.take_deliveries() == [Delivery("t", "W", [])]
    assert e.waiting_on("q") == 0
    assert e.next_deadline() is None
    put(e, "q", "m", now=16)
    assert e.take_deliveries() == []
    assert stats(e, "q", 16)["ready"] == 1


def test_a_message_ready_before_a_late_advance_goes_to_the_waiter_not_the_timeout() -> None:
    """advance() called late must act as if each deadline had been handled on time."""
    e = make_engine()
    put(e, "q", new("m", delay_s=3))
    wait(e, "q", "W", "t", wait_s=5)
    e.advance(10)
    assert served(e) == {"t": ["m"]}


def test_a_lease_expiring_before_a_late_advance_goes_to_the_waiter() -> None:
    e = make_engine()
    put(e, "q", "m")
    get(e, "q", "A", lease_s=3)
    wait(e, "q", "W", "t", wait_s=5)
    e.advance(10)
    assert served(e) == {"t": ["m"]}


def test_a_message_ready_at_the_instant_the_wait_ends_is_delivered() -> None:
    e = make_engine()
    put(e, "q", new("m", delay_s=5))
    wait(e, "q", "W", "t", wait_s=5)
    e.advance(5)
    assert served(e) == {"t": ["m"]}


def test_messages_ready_at_the_same_instant_go_out_by_priority() -> None:
    e = make_engine()
    put(e, "q", new("low", delay_s=5, priority=1), new("high", delay_s=5, priority=-1))
    wait(e, "q", "W", "t", wait_s=100)
    e.advance(5)
    assert served(e) == {"t": ["high"]}


def test_end_all_waits_completes_every_waiter_empty() -> None:
    e = make_engine()
    wait(e, "q1", "A", "t1")
    wait(e, "q1", "B", "t2")
    wait(e, "q2", "A", "t3")
    e.end_all_waits()
    assert served(e) == {"t1": [], "t2": [], "t3": []}
    assert e.waiting_on("q1") == 0
    assert e.next_deadline() is None
    put(e, "q1", "m")
    assert e.take_deliveries() == []
    e.advance(100)
    assert e.take_deliveries() == []


def test_a_waiter_and_a_deliverable_message_never_coexist() -> None:
    """Drive a busy mix of waits and releases; check the invariant after every call."""
    e = make_engine()
    now = 0.0
    leased: list[tuple[object, Message]] = []
    for step in range(200):
        now += 0.25
        owner = f"c{step % 4}"
        kind = step % 5
        if kind == 0:
            put(e, "q", new(f"m{step}", key=("K" if step % 3 == 0 else None)), now=now)
        elif kind in (1, 2):
            got = e.get(now, "q", owner, 2, 2.0, wait_s=1.0, token=step)
            leased.extend((owner, m) for m in got or [])
        elif kind == 3 and leased:
            holder, msg = leased.pop(0)
            if msg.state == State.LEASED and msg.owner == holder:
                e.nack(now, holder, msg.seq)
        else:
            e.advance(now)
        for d in e.take_deliveries():
            leased.extend((d.owner, m) for m in d.messages)
        assert_no_waiter_beside_a_deliverable_message(e)
    assert stats(e, "q", now)["put"] == 40


def test_cancel_waits_ends_only_the_owners_waits_with_that_key() -> None:
    e = make_engine()
    wait(e, "q", "A", "a1", key=1)
    wait(e, "q", "A", "a2", key="1")  # another key: the string, not the number
    wait(e, "q2", "A", "a3", key=1)
    wait(e, "q", "B", "b1", key=1)  # same key, other owner: untouched
    assert e.cancel_waits("A", 1) == 2
    ended = sorted((d.token, d.owner, d.messages) for d in e.take_deliveries())
    assert ended == [("a1", "A", []), ("a3", "A", [])]
    assert e.waiting_on("q") == 2
    assert e.waiting_on("q2") == 0
    assert e.cancel_waits("A", 1) == 0
    assert e.cancel_waits("A", None) == 0
    assert e.cancel_waits("nobody", 1) == 0
    put(e, "q", "m1", "m2", now=1)
    assert served(e) == {"a2": ["m1"], "b1": ["m2"]}
    e.advance(100)
    assert e.take_deliveries() == []


def test_cancelled_waits_do_not_pile_up_in_the_deadline_heap() -> None:
    e = make_engine()
    wait(e, "idle", "W", "long", wait_s=3600)
    for i in range(5_000):
        wait(e, "q", "A", i, wait_s=7200, now=i * 0.001, key=i)
        assert e.cancel_waits("A", i) == 1
    assert len(e.take_deliveries()) == 5_000
    assert len(e._deadlines) <= 1100
    assert e.next_deadline() == 3600


def test_a_batch_ack_frees_all_its_keys_before_waiters_are_served() -> None:
    e = make_engine()
    k1, _k2, j1, _j2 = put(
        e,
        "q",
        new("k1", key="K"),
        new("k2", key="K", priority=5),
        new("j1", key="J"),
        new("j2", key="J", priority=-5),
    )
    assert bodies(get(e, "q", "A", max=4)) == ["k1", "j1"]
    wait(e, "q", "W", "t", max=1)
    assert e.ack_many(1, "A", [k1, j1]).acked == 2
    assert served(e) == {"t": ["j2"]}


def test_leases_expiring_at_one_instant_go_out_by_priority() -> None:
    e = make_engine()
    put(e, "q", new("low", priority=5), new("high", priority=-5))
    get(e, "q", "A", max=1, lease_s=5)  # high
    get(e, "q", "B", max=1, lease_s=5)  # low
    wait(e, "q", "W", "t", max=1, wait_s=100)
    e.advance(5)
    assert served(e) == {"t": ["high"]}


@pytest.mark.interpreted("counts the waits ended by wrapping the engine's _end_empty")
def test_a_cancel_among_twenty_thousand_waits_ends_only_its_own() -> None:
    e = make_engine(max_waiting=100_000)
    for i in range(20_000):
        wait(e, f"q{i % 50}", "A", i, key=i)
    ends = 0
    original = e._end_empty

    def counting(waiter: Waiter) -> None:
        nonlocal ends
        ends += 1
        original(waiter)

    e._end_empty = counting  # type: ignore[method-assign]
    assert e.cancel_waits("A", 12_345) == 1 and ends == 1
    assert e.waits_of("A") == 19_999
    assert len(e._owner_waiters["A"].keyed(12_345)) == 0


def test_max_waiting_refuses_one_more_waiting_get_naming_the_limit() -> None:
    e = make_engine(max_waiting=2)
    wait(e, "x", "A", "a1")
    wait(e, "y", "A", "a2")
    with pytest.raises(BadRequest) as info:
        e.get(0, "q", "A", 1, 30, 10, "a3")
    assert "max-waiting" in info.value.message and "2" in info.value.message
    put(e, "q", "m")
    with pytest.raises(BadRequest):  # refused before anything, even with a message ready
        e.get(0, "q", "A", 1, 30, 10, "a3")
    assert stats(e, "q")["ready"] == 1 and e.waiting_on("q") == 0
    assert bodies(e.get(0, "q", "A", 1, 30)) == ["m"]  # a GET that does not wait is not
    wait(e, "q", "B", "b1")  # another owner has its own count
    put(e, "x", "for a1")
    assert served(e) == {"a1": ["for a1"]}
    wait(e, "q", "A", "a4")  # one ended: room again
    assert e.waits_of("A") == 2 and e.waits_of("B") == 1


def test_a_waiter_whose_owner_has_no_room_is_passed_over_and_keeps_its_place() -> None:
    e = make_engine()
    wait(e, "q", "FULL", "f1")
    wait(e, "q", "FULL", "f2")
    wait(e, "q", "OK", "ok")
    e.set_room(0, "FULL", 0)  # its connection's write buffer is past the high-water mark
    put(e, "q", "m1", "m2")
    assert served(e) == {"ok": ["m1"]}
    assert stats(e, "q")["ready"] == 1  # m2 stays ready for another consumer
    assert bodies(e.get(0, "q", "OTHER", 1, 30)) == ["m2"]
    e.set_room(1, "FULL", 10_000)  # drained: its waiters go on, in their order
    put(e, "q", "m3", "m4", now=2)
    assert served(e) == {"f1": ["m3"], "f2": ["m4"]}


def test_deliveries_take_room_off_and_stop_at_none() -> None:
    e = make_engine()
    for token in ("a", "b", "c"):
        wait(e, "q", "R", token, max=5)
    e.set_room(0, "R", 700)  # one delivery of 5 x 100-byte bodies (plus overhead) uses it up
    put(e, "q", *["x" * 100] * 12)
    assert served(e) == {"a": ["x" * 100] * 5}
    assert stats(e, "q")["ready"] == 7 and e.waits_of("R") == 2
    e.set_room(0, "R", None)  # no limit: a connection that does not say
    assert served(e) == {"b": ["x" * 100] * 5, "c": ["x" * 100] * 2}


def test_a_get_reply_holds_at_most_max_reply_bytes_of_bodies_and_headers() -> None:
    e = make_engine(max_reply_bytes=20_000)
    headers = {"h": "v" * 4000}
    e.put_extended(0, "q", [new("b")] * 50, None, [headers] * 50)
    got = e.get(0, "q", "A", 50, 30)
    assert got is not None and len(got) == 5  # 4 KB of headers each: 20 KB


def test_a_delivery_is_sized_by_its_bodies_fields_and_headers_message_by_message() -> None:
    """``delivery_bytes`` sums over the batch in C calls: the same as one message at a time."""
    e = make_engine()
    put(e, "q", "a", "bb")
    e.put_extended(0.0, "q", [new("ccc"), new("d")], None, [{"trace": "t1"}, None])
    msgs = get(e, "q", "A", max=10)
    assert msgs is not None and len(msgs) == 4
    one_by_one = [len(m.body) + REPLY_OVERHEAD + headers_bytes(m) for m in msgs]
    assert headers_bytes(msgs[2]) > 0
    assert delivery_bytes(msgs) == sum(one_by_one)
    assert delivery_bytes(msgs[:2]) == sum(one_by_one[:2])  # no headers at all
    assert delivery_bytes([]) == 0
