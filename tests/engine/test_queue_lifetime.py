"""A queue's life: made only by what stores in it, limited by max-queues, forgotten once idle.

GETs on a name with no queue wait in its lobby and are taken over by the
queue made under that name; a refused PUT makes nothing; an idle queue is
forgotten at its second idle look with no event between (time passed in).
"""

from __future__ import annotations

import pytest

from broker.engine import AckedRecord, Engine
from broker.engine.footprint import COMPACT, QUEUE
from broker.engine.forgetting import LOOK_MAX
from broker.errors import MemoryLimit, QueueFull, TooLarge
from tests.engine.helpers import bodies, get, make_engine, new, put, put_one

PASS_S = 60.0  # forget_after_s, the default


def forget_after_two_passes(e: Engine, start: float = 0.0) -> list[int]:
    """Call forget_idle as a backend's timer would, over two passes: what each call forgot."""
    return [e.forget_idle(start + t * PASS_S / 10) for t in range(21)]


def no_lobby(e: Engine) -> bool:
    return e._lobbies == {}


def test_a_refused_put_makes_no_queue() -> None:
    e = make_engine(
        max_body=8, max_queue_length=2, max_memory=QUEUE + COMPACT + 7 + 30
    )  # one small queue
    with pytest.raises(TooLarge):
        put(e, "big", "123456789")
    with pytest.raises(QueueFull):
        put(e, "full", "a", "b", "c")
    with pytest.raises(TooLarge):
        e.put_extended(0.0, "dd", [new("123456789")], ["d1"], None)
    put(e, "fits", "1234567")
    with pytest.raises(MemoryLimit):
        put(e, "mem", "1")  # past max-memory: one queue holds what it allows
    assert e.queue_names() == ["fits"] and e.totals()["queues"] == 1
    assert e.dedup_totals()["dedup_ids"] == 0


def test_a_waiting_get_on_no_queue_waits_in_its_lobby_and_the_put_that_makes_it_serves_it() -> None:
    e = make_engine()
    assert e.get(0.0, "q", "A", 2, None, 10.0, token="t") is None
    assert e.find_queue("q") is None and e.waiting_on("q") == 1 and e.holds("A")
    assert e.next_deadline() == 10.0
    put(e, "q", "a", "b", now=1.0)
    (d,) = e.take_deliveries()
    assert d.token == "t" and bodies(d.messages) == ["a", "b"]
    assert d.messages[0].due_at == 1.0 + 30.0  # the server's lease: the queue had none
    assert e.waiting_on("q") == 0 and no_lobby(e)


def test_a_wait_that_runs_out_on_no_queue_leaves_nothing() -> None:
    e = make_engine()
    for owner in ("A", "B"):
        assert e.get(0.0, "q", owner, 1, 5.0, 10.0, token=owner) is None
    e.advance(10.0)
    assert [d.messages for d in e.take_deliveries()] == [[], []]
    assert no_lobby(e) and e.totals()["queues"] == 0 and e.next_deadline() is None


def test_lobby_waiters_cancelled_or_gone_with_their_owner_leave_nothing() -> None:
    e = make_engine()
    assert e.get(0.0, "q", "A", 1, 5.0, 10.0, token="a", cancel_key="a") is None
    assert e.get(0.0, "q", "B", 1, 5.0, 10.0, token="b", cancel_key="b") is None
    assert e.cancel_waits("A", "a") == 1
    e.disconnect(0.0, "B")
    assert no_lobby(e) and e.waiting_on("q") == 0


def test_config_and_pause_make_the_queue_and_take_over_its_waiters_in_order() -> None:
    e = make_engine()
    for token in ("w1", "w2"):
        assert e.get(0.0, "p", token, 1, None, 60.0, token=token) is None
    e.pause(1.0, "p")  # made, paused: the waiters wait on it now
    assert no_lobby(e) and e.waiting_on("p") == 2
    put(e, "p", "x", "y", now=2.0)
    assert e.take_deliveries() == []
    e.resume(3.0, "p")
    assert [(d.token, bodies(d.messages)) for d in e.take_deliveries()] == [
        ("w1", ["x"]),
        ("w2", ["y"]),
    ]
    assert e.get(0.0, "c", "C", 1, None, 60.0, token="c") is None
    e.configure(0.0, "c", {"rate": 1.0})
    put(e, "c", "z", now=4.0)
    assert [(d.token, bodies(d.messages)) for d in e.take_deliveries()] == [("c", ["z"])]


def test_max_queues_refuses_a_new_queue_naming_the_limit_and_nothing_else() -> None:
    e = make_engine(max_queues=2, max_attempts=1)
    put(e, "a", "1")
    put(e, "b", "2")
    with pytest.raises(MemoryLimit) as info:
        put(e, "c", "3")
    assert "max-queues" in info.value.message and "'c'" in info.value.message
    for make in (lambda: e.configure(0.0, "c", {"lease_s": 1.0}), lambda: e.pause(0.0, "c")):
        with pytest.raises(MemoryLimit):
            make()
    assert put(e, "a", "4")  # a queue that exists takes PUTs as before
    assert e.get(0.0, "c", "A", 1, 5.0) == []  # a GET needs no queue
    # a dead letter always finds its .dead queue, past the limit: nothing held is lost
    (msg,) = get(e, "a", "A")
    assert e.nack(0.0, "A", msg.seq) is True
    assert e.queue_names() == ["a", "a.dead", "b"]
    assert e.redrive(0.0, "z") == 0  # no z.dead: nothing to move, so no queue is needed
    e.delete(0.0, "b")
    with pytest.raises(MemoryLimit):  # a and a.dead: still two
        put(e, "c", "3")
    e.delete(0.0, "a", dead=True)
    assert put(e, "c", "3")


def test_redrive_into_a_new_queue_is_refused_past_max_queues_before_anything_moves() -> None:
    e = make_engine(max_queues=1)
    put(e, "q.dead", "d")  # a .dead queue is a queue: PUT may fill it
    with pytest.raises(MemoryLimit):
        e.redrive(0.0, "q")
    assert e.queue_stats(e.find_queue("q.dead"), 0.0)["ready"] == 1  # type: ignore[arg-type]
    assert e.find_queue("q") is None


def test_an_idle_queue_is_forgotten_after_one_to_two_passes_and_a_new_one_starts_afresh() -> None:
    e = make_engine()
    seq = put_one(e, "q", "m")
    (msg,) = get(e, "q")
    e.ack(0.0, "A", seq)
    assert msg.seq == seq
    forgot = forget_after_two_passes(e)
    assert sum(forgot) == 1 and e.find_queue("q") is None and e.forgotten == 1
    assert 10 <= forgot.index(1) <= 20  # at the second look: a pass or more after the first
    found = e.lookup(seq)  # the acked history keeps the queue's name
    assert isinstance(found, AckedRecord) and found.queue == "q"
    put(e, "q", "again")
    assert e.queue_stats(e.find_queue("q"), 0.0)["put"] == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keep",
    ["message", "delayed", "lease", "waiter", "setting", "paused", "dedup id"],
)
def test_a_queue_that_holds_anything_is_never_forgotten(keep: str) -> None:
    e = make_engine()
    if keep == "message":
        put(e, "q", "m")
    elif keep == "delayed":
        put(e, "q", new("m", delay_s=3600))
    elif keep == "lease":
        put(e, "q", "m")
        get(e, "q", lease_s=3600)
    elif keep == "waiter":
        e.configure(0.0, "q", {"lease_s": 1.0})
        e.configure(0.0, "q", {"lease_s": None})  # made, and back to the defaults
        assert e.get(0.0, "q", "W", 1, 5.0, 3600.0, token="w") is None
    elif keep == "setting":
        e.configure(0.0, "q", {"max_attempts": 3})
    elif keep == "paused":
        e.pause(0.0, "q")
    else:
        e.put_extended(0.0, "q", [new("m")], ["id-1"], None)
        e.ack(0.0, "A", get(e, "q")[0].seq)
    assert sum(forget_after_two_passes(e)) == 0 and e.find_queue("q") is not None


def test_a_busy_queue_that_is_empty_at_every_look_is_kept() -> None:
    e = make_engine()
    put(e, "q", "first")
    e.ack(0.0, "A", get(e, "q")[0].seq)
    for t in range(40):
        now = t * PASS_S / 10
        e.forget_idle(now)
        seq = put_one(e, "q", "m", now=now)  # a message comes and goes between looks
        e.ack(now, "A", get(e, "q", now=now)[0].seq)
        assert seq
    assert e.find_queue("q") is not None and e.forgotten == 0


def test_one_call_looks_at_no_more_than_look_max_queues() -> None:
    e = make_engine()
    n = LOOK_MAX + 500
    for i in range(n):
        e.configure(0.0, f"q{i}", {"lease_s": 1.0})
        e.configure(0.0, f"q{i}", {"lease_s": None})  # back to the defaults: idle
    assert e.forget_idle(0.0) == 0
    assert e.forget_idle(PASS_S) == 0  # the whole pass is due: LOOK_MAX looked at
    assert e._sweep_done == LOOK_MAX
    e.forget_idle(PASS_S)
    assert e._sweep_done == n
    forgot = sum(e.forget_idle(PASS_S * k) for k in (2, 3, 3))
    assert forgot == n and e.totals()["queues"] == 0
