"""The lifecycle table and its counters, on their own (no engine).

The rule is written out again here, by hand, and checked against the moves
compiled from the table: a wrong entry in the rule or a slip in the compiled
code shows up as a counter that disagrees with a recount.
"""

from __future__ import annotations

import random
from collections import deque

from broker.engine import lifecycle
from broker.engine.lifecycle import TABLE, Place, Tally, compile_move
from broker.engine.queue import Queue


def recount(places: list[tuple[Place, int]]) -> dict[str, int]:
    """Every counter, from the places and body sizes of a queue's messages."""

    def n(*wanted: Place) -> int:
        return sum(1 for place, _ in places if place in wanted)

    return {
        "q.n_ready": n(Place.READY, Place.COMPACT),
        "q.n_delayed": n(Place.DELAYED),
        "q.n_leased": n(Place.LEASED),
        "q.bytes": sum(size for place, size in places if place != Place.OUT),
        "tally.n_compact": n(Place.COMPACT),
        "tally.n_timed": n(Place.DELAYED, Place.LEASED),
        "tally.n_leased": n(Place.LEASED),
        "tally.bytes": sum(size for place, size in places if place != Place.OUT),
    }


def counters(q: Queue, tally: Tally) -> dict[str, int]:
    return {
        "q.n_ready": q.n_ready,
        "q.n_delayed": q.n_delayed,
        "q.n_leased": q.n_leased,
        "q.bytes": q.bytes,
        "tally.n_compact": tally.n_compact,
        "tally.n_timed": tally.n_timed,
        "tally.n_leased": tally.n_leased,
        "tally.bytes": tally.bytes,
    }


def test_random_moves_keep_every_counter_equal_to_a_recount() -> None:
    rng = random.Random(12)
    q, tally = Queue("q", 5), Tally()
    places: list[tuple[Place, int]] = [(Place.OUT, rng.randrange(1, 50)) for _ in range(40)]
    events = list(TABLE)
    for step in range(3000):
        event = rng.choice(events)
        src, dst = TABLE[event]
        movable = [i for i, (place, _) in enumerate(places) if place == src]
        chosen = rng.sample(movable, min(len(movable), rng.randint(1, 4)))
        compile_move(event)(tally, q, len(chosen), sum(places[i][1] for i in chosen))
        for i in chosen:
            places[i] = (dst, places[i][1])
        assert counters(q, tally) == recount(places), (step, event)


def test_the_named_moves_are_the_rows_of_the_table() -> None:
    q, tally = Queue("q", 5), Tally()
    lifecycle.PUT_DELAYED(tally, q, 2, 10)
    lifecycle.DELAY_END(tally, q, 1, 0)
    lifecycle.PURGE_DELAYED(tally, q, 1, 4)
    lifecycle.PUT_PLAIN(tally, q, 3, 9)
    lifecycle.LEASE_PLAIN(tally, q, 2, 0)
    lifecycle.ACK(tally, q, 1, 3)
    assert counters(q, tally) == {
        "q.n_ready": 2,
        "q.n_delayed": 0,
        "q.n_leased": 1,
        "q.bytes": 12,
        "tally.n_compact": 1,
        "tally.n_timed": 1,
        "tally.n_leased": 1,
        "tally.bytes": 12,
    }
    assert tally.timed() == 1 and tally.compact() == 1


def test_every_place_is_reached_from_out_and_leads_back_out() -> None:
    """No message can get stuck: from every place some path of moves leads out."""

    def reachable(start: Place, forward: bool) -> set[Place]:
        seen, todo = {start}, deque([start])
        while todo:
            here = todo.popleft()
            for src, dst in TABLE.values():
                a, b = (src, dst) if forward else (dst, src)
                if a == here and b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen

    assert reachable(Place.OUT, forward=True) == set(Place)
    assert reachable(Place.OUT, forward=False) == set(Place)
