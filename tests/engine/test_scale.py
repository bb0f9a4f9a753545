"""Scale sanity: 100,000 messages, then the rules still hold. No timing assertions:
an operation that is accidentally quadratic shows up as the suite's timeout."""

from __future__ import annotations

from broker.engine import Engine, Message
from tests.engine.helpers import get, make_engine, new, stats

N = 100_000
BATCH = 1000


def put_many(e: Engine, queue: str, n: int, key_count: int = 0, delay_s: float = 0.0) -> None:
    for start in range(0, n, BATCH):
        items = [
            new(
                str(i),
                key=(f"k{i % key_count}" if key_count else None),
                priority=(i % 3) - 1,
                delay_s=delay_s,
            )
            for i in range(start, min(start + BATCH, n))
        ]
        e.put(0, queue, items)


def lease_all(e: Engine, queue: str, owner: object, now: float = 0.0) -> list[Message]:
    out: list[Message] = []
    for _ in range(N // BATCH + 2):
        got = get(e, queue, owner, max=BATCH, now=now)
        if not got:
            return out
        out.extend(got)
    raise AssertionError("GET never ran dry")


def test_a_hundred_thousand_messages_come_out_in_order_once_each() -> None:
    e = make_engine()
    put_many(e, "q", N)
    s = stats(e, "q")
    assert (s["ready"], s["put"]) == (N, N)
    first = lease_all(e, "q", "A")
    assert len(first) == N and len({m.seq for m in first}) == N
    assert [(m.priority, m.seq) for m in first] == sorted((m.priority, m.seq) for m in first)
    # give every other one back: they come out again, in their original places
    back = first[::2]
    for m in back:
        e.nack(1, "A", m.seq)
    again = lease_all(e, "q", "B", now=1)
    assert [m.seq for m in again] == [
        m.seq for m in sorted(back, key=lambda m: (m.priority, m.seq))
    ]
    assert all(m.attempts == 2 for m in again)
    result = e.ack_many(2, "A", [m.seq for m in first])
    assert (result.acked, len(result.not_leased), result.not_found) == (N // 2, N // 2, [])
    e.disconnect(3, "B")
    assert stats(e, "q", 3)["ready"] == N // 2
    assert e.totals()["messages"] == N // 2


def test_a_hundred_thousand_keyed_messages_keep_one_lease_per_key() -> None:
    e = make_engine()
    keys = 1000
    put_many(e, "q", N, key_count=keys)
    got = lease_all(e, "q", "A")
    assert len(got) == keys
    assert len({m.key for m in got}) == keys
    assert all(int(m.body) < keys for m in got)  # each key's first message
    e.ack_many(0, "A", [m.seq for m in got])
    got = lease_all(e, "q", "A")
    assert sorted(int(m.body) for m in got) == list(range(keys, 2 * keys))


def test_purging_a_hundred_thousand_messages_of_one_key_with_mixed_priorities() -> None:
    e = make_engine()
    for start in range(0, N, BATCH):
        e.put(0, "q", [new("x", key="K", priority=-i) for i in range(start, start + BATCH)])
    (head,) = get(e, "q")
    assert e.purge(0, "q") == N - 1
    e.put(0, "q", [new("next", key="K")])
    assert get(e, "q", "B") == []
    e.ack(0, "A", head.seq)
    assert [m.body for m in get(e, "q", "B")] == [b"next"]


def test_a_hundred_thousand_delays_and_leases_expire_in_one_advance() -> None:
    e = make_engine()
    for start in range(0, N, BATCH):
        e.put(0, "q", [new(str(i), delay_s=1 + i % 100) for i in range(start, start + BATCH)])
    assert e.next_deadline() == 1
    e.advance(100)
    assert stats(e, "q", 100)["ready"] == N
    got = lease_all(e, "q", "A", now=100)
    assert len(got) == N
    e.advance(100 + 30)
    s = stats(e, "q", 130)
    assert (s["ready"], s["leased"], s["expired"]) == (N, 0, N)
    assert e.next_deadline() is None


def test_redrive_of_a_hundred_thousand_dead_messages() -> None:
    e = make_engine(max_attempts=1)
    put_many(e, "q", N, key_count=10)
    for _ in range(N // 10 + 1):
        got = get(e, "q", "A", max=BATCH)
        if not got:
            break
        e.disconnect(0, "A")
    assert stats(e, "q")["dead"] == N
    assert e.redrive(0, "q") == N
    s = stats(e, "q")
    assert (s["ready"], s["dead"], s["redriven"]) == (N, 0, N)


def test_redrive_of_one_dead_key_interleaved_with_delayed_messages() -> None:
    """Ready messages of a key chain moved out from between delayed ones."""
    e = make_engine()
    for start in range(0, N, BATCH):
        items = [
            new(str(i), key="K", delay_s=(100 if i % 2 == 0 else 0))
            for i in range(start, start + BATCH)
        ]
        e.put(0, "q.dead", items)
    assert e.redrive(0, "q") == N // 2
    got = get(e, "q", max=10)
    assert [m.body for m in got] == [b"1"]  # the first ready one heads K in q
    e.advance(100)
    got = get(e, "q.dead", max=10, now=100)
    assert [m.body for m in got] == [b"0"]  # the delayed ones keep their chain in q.dead
    assert stats(e, "q.dead", 100)["ready"] == N // 2 - 1
