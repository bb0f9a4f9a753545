"""PURGE, INFO lookups and acked history, STATS counters, queue listing and the
deadline heap's bound."""

from __future__ import annotations

import pytest

from broker.engine import AckedRecord, Message, State
from broker.errors import NotFound, NotLeased
from tests.engine.helpers import bodies, get, make_engine, new, put, put_one, seqs, state_of, stats


def test_purge_deletes_ready_and_delayed_and_keeps_leased() -> None:
    e = make_engine()
    a, b, c, d = put(e, "q", "a", "bb", new("c", delay_s=5), new("d", priority=3))
    assert seqs(get(e, "q", "A")) == [a]
    assert e.purge(1, "q") == 3
    assert [state_of(e, s) for s in (a, b, c, d)] == ["leased", "gone", "gone", "gone"]
    s = stats(e, "q", 1)
    assert (s["ready"], s["delayed"], s["leased"], s["purged"], s["bytes"]) == (0, 0, 1, 3, 1)
    assert e.totals() == {"queues": 1, "messages": 1, "leased": 1, "bytes": 1}
    assert e.next_deadline() == 30  # only the lease is left; the delay is gone
    e.advance(5)
    assert stats(e, "q", 5)["ready"] == 0
    assert get(e, "q", "B", now=5) == []
    e.ack(5, "A", a)
    assert e.totals()["messages"] == 0


def test_purge_of_an_unknown_queue_is_zero() -> None:
    e = make_engine()
    assert e.purge(0, "nothing") == 0


def test_purge_then_put_and_release_keep_the_queue_working() -> None:
    e = make_engine()
    put(e, "q", "a", "b")
    (a,) = seqs(get(e, "q"))
    e.purge(0, "q")
    put(e, "q", "c")
    e.nack(0, "A", a)
    assert bodies(get(e, "q", "B", max=5)) == ["a", "c"]


def test_purge_keeps_key_chains_consistent_with_a_leased_head() -> None:
    e = make_engine()
    k1, _k2, _k3 = put(e, "q", new("k1", key="K"), new("k2", key="K"), new("k3", key="K"))
    assert seqs(get(e, "q")) == [k1]
    assert e.purge(0, "q") == 2
    k4 = put_one(e, "q", new("k4", key="K"))
    assert get(e, "q", "B", max=5) == []  # k1 still leased holds K
    e.ack(0, "A", k1)
    assert seqs(get(e, "q", "B", max=5)) == [k4]


def test_purge_removes_a_delayed_key_head_and_frees_the_key() -> None:
    e = make_engine()
    put(e, "q", new("k1", key="K", delay_s=10), new("k2", key="K"))
    assert e.purge(0, "q") == 2
    put(e, "q", new("k3", key="K"))
    assert bodies(get(e, "q", max=5)) == ["k3"]
    e.advance(10)
    assert e.take_deliveries() == []


def test_purge_of_a_key_chain_with_mixed_priorities() -> None:
    e = make_engine()
    put(e, "q", *(new(f"k{i}", key="K", priority=10 - i) for i in range(10)))
    assert e.purge(0, "q") == 10
    put(e, "q", new("again", key="K"))
    assert bodies(get(e, "q")) == ["again"]


def test_lookup_returns_the_message_then_an_acked_record() -> None:
    e = make_engine()
    seq = put_one(e, "q", new("m", key="K", priority=2, max_attempts=7), now=3)
    found = e.lookup(seq)
    assert isinstance(found, Message)
    assert (found.queue.name, found.state, found.key, found.priority) == ("q", State.READY, "K", 2)
    assert (found.max_attempts, found.attempts, found.put_at, found.body) == (7, 0, 3, b"m")
    get(e, "q", now=4)
    e.ack(5, "A", seq)
    record = e.lookup(seq)
    assert isinstance(record, AckedRecord)
    assert (record.seq, record.queue) == (seq, "q")
    assert e.lookup(1) is None


def test_acked_history_has_one_bound_over_every_queue() -> None:
    e = make_engine(acked_history=3)
    ids_q = put(e, "q", "1", "2", "3")
    ids_r = put(e, "r", "x", "y")
    get(e, "q", max=3)
    get(e, "r", max=2)
    for seq in ids_q:
        e.ack(0, "A", seq)
    assert all(isinstance(e.lookup(s), AckedRecord) for s in ids_q)
    e.ack(0, "A", ids_r[0])  # another queue's ack evicts the oldest of all: q's first
    assert e.lookup(ids_q[0]) is None
    e.ack_many(0, "A", [ids_r[1]])
    assert e.lookup(ids_q[1]) is None
    assert [state_of(e, s) for s in (ids_q[2], *ids_r)] == ["acked"] * 3
    assert len(e._acked) == len(e._acked_order) == 3


def test_many_queues_cannot_hold_more_acked_ids_than_the_bound() -> None:
    e = make_engine(acked_history=50)
    for i in range(300):
        put(e, f"q{i}", "a", "b")
        e.ack_many(0, "A", [m.seq for m in get(e, f"q{i}", max=2)])
    assert len(e._acked) == len(e._acked_order) == 50


def test_a_deleted_queues_acked_ids_are_not_found_and_a_forgotten_ones_are() -> None:
    e = make_engine()
    (gone,) = put(e, "gone", "x")
    (idle,) = put(e, "idle", "y")
    e.ack(0, "A", get(e, "gone")[0].seq)
    e.ack(0, "A", get(e, "idle")[0].seq)
    e.delete(0, "gone")
    assert e.lookup(gone) is None
    with pytest.raises(NotFound):
        e.ack(0, "A", gone)
    for t in range(0, 200, 6):
        e.forget_idle(float(t))
    assert e.find_queue("idle") is None
    assert state_of(e, idle) == "acked"  # the history keeps the name of a forgotten queue
    with pytest.raises(NotLeased):
        e.ack(0, "A", idle)


def test_acked_history_of_zero_remembers_nothing() -> None:
    e = make_engine(acked_history=0)
    seq = put_one(e, "q", "m")
    get(e, "q")
    e.ack(0, "A", seq)
    assert e.lookup(seq) is None


def test_purged_messages_are_not_found() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    e.purge(0, "q")
    assert e.lookup(seq) is None


def test_stats_counters_follow_every_kind_of_event() -> None:
    e = make_engine()
    a, b, c, d, f = put(e, "q", new("a", max_attempts=1), "b", "c", "d", new("f", delay_s=9))
    get(e, "q", "A", max=4, lease_s=5)
    e.ack(1, "A", b)
    e.nack(1, "A", c)
    e.nack(1, "A", a)  # dead-lettered
    e.advance(5)  # d expires
    get(e, "q", "B", max=1, lease_s=100, now=5)
    e.disconnect(6, "B")
    assert e.redrive(7, "q") == 1
    assert e.purge(8, "q") == 4  # a (redriven), c, d, f
    s = stats(e, "q", 8)
    counters = {
        k: s[k]
        for k in (
            "put",
            "acked",
            "nacked",
            "expired",
            "released_on_disconnect",
            "dead_lettered",
            "redriven",
            "purged",
        )
    }
    assert counters == {
        "put": 5,
        "acked": 1,
        "nacked": 2,
        "expired": 1,
        "released_on_disconnect": 1,
        "dead_lettered": 1,
        "redriven": 1,
        "purged": 4,
    }
    assert (s["ready"], s["delayed"], s["leased"], s["dead"], s["waiting_consumers"]) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert [state_of(e, x) for x in (a, d, f)] == ["gone", "gone", "gone"]


def test_oldest_ready_age_of_a_plain_fifo_queue() -> None:
    e = make_engine()
    put(e, "q", "a", now=10)
    put(e, "q", "b", now=12)
    assert stats(e, "q", 15)["oldest_ready_age"] == 5
    get(e, "q", now=15)
    assert stats(e, "q", 15)["oldest_ready_age"] == 3
    get(e, "q", now=15)
    assert stats(e, "q", 15)["oldest_ready_age"] is None


def test_queue_names_are_sorted_and_only_what_stores_makes_a_queue() -> None:
    e = make_engine()
    assert e.queue_names() == []
    put(e, "b", "x")
    get(e, "a")
    assert e.get(0.0, "w", "A", 1, 30.0, 5.0, token="t") is None  # waits in w's lobby
    assert e.peek("p", None, 10) == [] and e.purge(0.0, "p") == 0 and e.redrive(0.0, "p") == 0
    e.configure(0.0, "c", {"lease_s": 5.0})
    e.pause(0.0, "d")
    assert e.queue_names() == ["b", "c", "d"]
    assert e.find_queue("a") is None and e.find_queue("w") is None
    assert e.totals()["queues"] == 3


def test_touching_one_lease_many_times_keeps_the_deadline_heap_bounded() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    get(e, "q", lease_s=10)
    for i in range(10_000):
        e.touch(i * 0.001, "A", seq, 10)
        assert len(e._deadlines) <= 1100
    assert e.next_deadline() == 9.999 + 10
    e.advance(20)
    assert state_of(e, seq) == "ready"
    assert stats(e, "q", 20)["expired"] == 1


def test_many_acked_leases_do_not_pile_up_behind_a_long_deadline() -> None:
    """Stale entries later than the earliest live deadline must be compacted too."""
    e = make_engine()
    assert e.get(0, "idle", "W", 1, 30, wait_s=60, token="w") is None  # earliest live: 60
    for i in range(10_000):
        now = i * 0.001
        seq = put_one(e, "q", "m", now=now)
        get(e, "q", lease_s=3600, now=now)
        e.ack(now, "A", seq)
        e.next_deadline()  # as the server does after every request
    assert len(e._deadlines) <= 1100
    e.advance(60)
    assert [d.token for d in e.take_deliveries()] == ["w"]


def test_many_nacked_leases_do_not_pile_up_behind_a_long_deadline() -> None:
    e = make_engine()
    assert e.get(0, "idle", "W", 1, 30, wait_s=60, token="w") is None
    seq = put_one(e, "q", new("m", max_attempts=10**6))
    for i in range(10_000):
        now = i * 0.001
        assert seqs(get(e, "q", lease_s=3600, now=now)) == [seq]
        e.nack(now, "A", seq)
        e.next_deadline()
    assert len(e._deadlines) <= 1100
    assert state_of(e, seq) == "ready"
