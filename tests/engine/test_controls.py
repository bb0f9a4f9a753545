"""CONFIG, PAUSE, RESUME and the rate limit in the engine, time passed explicitly."""

from __future__ import annotations

import pytest

from broker.engine import Engine, Message
from broker.errors import NotFound, QueueFull
from tests.engine.helpers import get, make_engine, new, put, seqs, stats


def waiting_get(e: Engine, queue: str, token: object, *, now: float, wait_s: float = 10.0) -> None:
    assert e.get(now, queue, "W", 5, 30.0, wait_s, token=token) is None


def delivered(e: Engine) -> dict[object, list[int]]:
    return {d.token: [m.seq for m in d.messages] for d in e.take_deliveries()}


# ---------------------------------------------------------------- settings


def test_config_reads_sets_and_resets_settings() -> None:
    e = make_engine(lease_s=30.0, max_attempts=5)
    with pytest.raises(NotFound):
        e.configure(0.0, "q", {})  # a read does not create the queue
    assert e.find_queue("q") is None
    got = e.configure(0.0, "q", {"lease_s": 120.0, "rate": 0.5})
    assert got == (120.0, 5, None, 0.5, 300.0)
    assert e.configure(0.0, "q", {}) == got
    again = e.configure(0.0, "q", {"rate": None, "max_length": 3})
    assert again == (120.0, 5, 3, None, 300.0)
    q = e.find_queue("q")
    assert q is not None and q.settings.overrides() == {"lease_s": 120.0, "max_length": 3}


def test_a_get_and_a_touch_without_a_lease_take_the_queue_lease() -> None:
    e = make_engine(lease_s=30.0)
    e.configure(0.0, "q", {"lease_s": 120.0})
    put(e, "q", "a")
    msgs = e.get(0.0, "q", "A", 1, None)
    assert msgs is not None and msgs[0].due_at == 120.0
    e.touch(50.0, "A", msgs[0].seq, None)
    assert msgs[0].due_at == 170.0
    e.configure(60.0, "q", {"lease_s": None})  # back to the server's 30 s
    e.touch(60.0, "A", msgs[0].seq, None)
    assert msgs[0].due_at == 90.0


def test_max_attempts_applies_to_messages_put_after_the_change() -> None:
    e = make_engine(max_attempts=5)
    (before,) = put(e, "q", "a")  # kept compact, with the queue's attempts then
    e.configure(0.0, "q", {"max_attempts": 1})
    (after,) = put(e, "q", "b")
    (named,) = put(e, "q", new("c", max_attempts=3))
    found = {s: e.lookup(s) for s in (before, after, named)}
    attempts = {s: m.max_attempts for s, m in found.items() if isinstance(m, Message)}
    assert attempts == {before: 5, after: 1, named: 3}
    msgs = get(e, "q", max=3)
    assert [m.max_attempts for m in msgs] == [5, 1, 3]
    assert [e.nack(0.0, "A", m.seq) for m in msgs] == [False, True, False]
    put(e, "q", "d")  # no compact message left: new plain ones are compact again
    q = e.find_queue("q")
    assert q is not None and q.compact.n == 1 and q.max_attempts == 1


def test_max_length_caps_ready_delayed_and_leased_and_names_the_setting() -> None:
    e = make_engine(max_queue_length=10)
    e.configure(0.0, "q", {"max_length": 2})
    put(e, "q", "a", new("b", delay_s=5.0))
    with pytest.raises(QueueFull, match=r"limit \(max_length\) is 2"):
        put(e, "q", "c")
    get(e, "q")
    with pytest.raises(QueueFull):
        put(e, "q", "c")
    e.configure(0.0, "q", {"max_length": None})  # the server's 10 again
    put(e, "q", *["x"] * 8)
    with pytest.raises(QueueFull, match=r"limit \(max-queue-length\) is 10"):
        put(e, "q", "y")


# ---------------------------------------------------------------- pause


def test_a_paused_queue_takes_puts_keeps_leases_and_delivers_nothing() -> None:
    e = make_engine()
    put(e, "q", "a", "b")
    (held,) = get(e, "q")
    e.pause(0.0, "q")
    put(e, "q", "c")
    assert get(e, "q") == []
    e.ack(0.0, "A", held.seq)  # leases work as usual
    assert stats(e, "q")["paused"] is True and stats(e, "q")["ready"] == 2
    waiting_get(e, "q", "w", now=1.0)
    e.advance(5.0)
    assert delivered(e) == {}
    e.resume(5.0, "q")
    assert [len(v) for v in delivered(e).values()] == [2]


def test_pause_creates_the_queue_and_resume_of_an_unknown_one_is_not_found() -> None:
    e = make_engine()
    e.pause(0.0, "new")
    assert e.queue_names() == ["new"]
    e.pause(0.0, "new")  # again: nothing changes
    with pytest.raises(NotFound):
        e.resume(0.0, "missing")
    e.resume(0.0, "new")
    e.resume(0.0, "new")  # running already: nothing changes
    assert stats(e, "new")["paused"] is False


def test_a_waiting_get_on_a_paused_queue_ends_empty_when_its_wait_runs_out() -> None:
    e = make_engine()
    e.pause(0.0, "q")
    put(e, "q", "a")
    waiting_get(e, "q", "w", now=0.0, wait_s=2.0)
    assert e.next_deadline() == 2.0
    e.advance(2.0)
    assert delivered(e) == {"w": []}


# ---------------------------------------------------------------- rate


def test_the_bucket_starts_full_and_holds_at_most_max_1_rate_tokens() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 4.0})
    put(e, "q", *"abcdefghij")
    assert len(get(e, "q", max=10, now=0.0)) == 4  # full: 4 tokens
    assert get(e, "q", now=0.0) == []
    assert len(get(e, "q", max=10, now=0.5)) == 2  # 4 per second
    assert len(get(e, "q", max=10, now=100.0)) == 4  # never more than 4 at once


def test_a_fractional_rate_delivers_one_message_every_two_seconds() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 0.5})
    put(e, "q", "a", "b", "c")
    assert len(get(e, "q", max=3, now=0.0)) == 1  # max(1, 0.5): one token
    assert get(e, "q", now=1.9) == []
    assert len(get(e, "q", max=3, now=2.0)) == 1
    assert get(e, "q", now=3.0) == []


def test_a_waiting_get_is_served_when_a_token_comes_back_by_the_deadline_heap() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 0.5})
    put(e, "q", "a", "b")
    assert len(get(e, "q", max=5, now=0.0)) == 1
    waiting_get(e, "q", "w1", now=0.5)
    waiting_get(e, "q", "w2", now=0.6)
    assert e.next_deadline() == 2.0  # the token comes back at 2.0: one deadline
    e.advance(1.99)
    assert delivered(e) == {}
    e.advance(2.0)
    (served,) = delivered(e).values()
    assert len(served) == 1  # the first waiter, one token
    assert e.next_deadline() == 10.6  # w2 waits on: its own deadline (no message left)


def test_released_messages_take_a_token_again() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 1.0})
    put(e, "q", "a")
    (msg,) = get(e, "q", now=0.0)
    e.nack(0.0, "A", msg.seq)
    assert get(e, "q", now=0.5) == []
    assert seqs(get(e, "q", now=1.0)) == [msg.seq]


def test_a_late_advance_serves_waiters_as_at_each_token_instant() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 1.0})
    put(e, "q", *"abcd")
    get(e, "q", now=0.0)
    for token in ("w1", "w2", "w3"):
        waiting_get(e, "q", token, now=0.0, wait_s=100.0)
    e.advance(10.0)  # tokens at 1, 2, 3: one waiter each, in arrival order
    assert delivered(e) == {
        "w1": [seqs_of(e, "b")],
        "w2": [seqs_of(e, "c")],
        "w3": [seqs_of(e, "d")],
    }


def seqs_of(e: Engine, body: str) -> int:
    for seq in e.live_seqs():
        found = e.lookup(seq)
        if isinstance(found, Message) and found.body == body.encode():
            return seq
    raise AssertionError(body)


def test_raising_the_rate_serves_waiters_and_removing_it_serves_them_all() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 1.0})
    put(e, "q", *"abcdef")
    get(e, "q", now=0.0)
    waiting_get(e, "q", "w1", now=0.0)
    waiting_get(e, "q", "w2", now=0.0)
    e.configure(0.5, "q", {"rate": 2.0})  # keeps its half token, now at 2 per second
    assert e.next_deadline() == 0.75
    e.advance(0.75)
    assert {k: len(v) for k, v in delivered(e).items()} == {"w1": 1}
    e.configure(1.0, "q", {"rate": None})  # no limit: w2 takes what it asks for
    assert {k: len(v) for k, v in delivered(e).items()} == {"w2": 4}
    assert stats(e, "q")["leased"] == 6 and stats(e, "q")["waiting_consumers"] == 0


def test_a_paused_rate_limited_queue_arms_no_token_deadline() -> None:
    e = make_engine()
    e.configure(0.0, "q", {"rate": 1.0})
    put(e, "q", "a", "b")
    get(e, "q", now=0.0)
    waiting_get(e, "q", "w", now=0.0, wait_s=50.0)
    assert e.next_deadline() == 1.0
    e.pause(0.5, "q")
    assert e.next_deadline() == 30.0  # the lease of "a": the token deadline is not live
    e.resume(3.0, "q")  # tokens have come back meanwhile
    assert [len(v) for v in delivered(e).values()] == [1]
