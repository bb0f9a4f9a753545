"""Small helpers for engine tests: explicit time, short names, no IO."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.compiled import is_compiled
from broker.config import Config
from broker.engine import Engine, Message, NewMessage, paged

FIRST_SEQ = 1000
LEASE_S = 30.0


def make_engine(**overrides: Any) -> Engine:
    return Engine(Config(**overrides), first_seq=FIRST_SEQ)


def new(
    body: bytes | str = b"x",
    *,
    key: str | None = None,
    delay_s: float = 0.0,
    priority: int = 0,
    max_attempts: int | None = None,
) -> NewMessage:
    data = body.encode() if isinstance(body, str) else body
    return NewMessage(data, key=key, delay_s=delay_s, priority=priority, max_attempts=max_attempts)


def put(engine: Engine, queue: str, *items: NewMessage | str, now: float = 0.0) -> list[int]:
    """Put messages (a str is a plain body) and return their ids."""
    batch = [new(i) if isinstance(i, str) else i for i in items]
    return engine.put(now, queue, batch)


def put_one(engine: Engine, queue: str, item: NewMessage | str, now: float = 0.0) -> int:
    (seq,) = put(engine, queue, item, now=now)
    return seq


def seqs(msgs: list[Message] | None) -> list[int]:
    assert msgs is not None, "expected a reply, got a registered waiter"
    return [m.seq for m in msgs]


def bodies(msgs: list[Message] | None) -> list[str]:
    assert msgs is not None, "expected a reply, got a registered waiter"
    return [m.body.decode() for m in msgs]


def get(
    engine: Engine,
    queue: str,
    owner: object = "A",
    *,
    max: int = 1,
    lease_s: float = LEASE_S,
    now: float = 0.0,
) -> list[Message]:
    """A GET without waiting: always a list."""
    msgs = engine.get(now, queue, owner, max, lease_s)
    assert msgs is not None
    return msgs


def drain_bodies(engine: Engine, queue: str, owner: object = "A", now: float = 0.0) -> list[str]:
    """Lease and ack one message at a time until none is deliverable; return their bodies."""
    out: list[str] = []
    for _ in range(10_000):
        msgs = get(engine, queue, owner, now=now)
        if not msgs:
            return out
        out.append(msgs[0].body.decode())
        engine.ack(now, owner, msgs[0].seq)
    raise AssertionError("queue did not drain in 10000 steps")


def stats(engine: Engine, queue: str, now: float = 0.0) -> dict[str, int | float | None]:
    q = engine.find_queue(queue)
    assert q is not None, f"no queue {queue!r}"
    return engine.queue_stats(q, now)


def held(engine: Engine) -> list[Message]:
    """Every message the engine holds, by id (compact ones as snapshots; O(n))."""
    found = (engine.lookup(seq) for seq in sorted(engine.live_seqs()))
    return [m for m in found if isinstance(m, Message)]


def state_of(engine: Engine, seq: int) -> str:
    found = engine.lookup(seq)
    if found is None:
        return "gone"
    if isinstance(found, Message):
        return found.state.name.lower()
    return "acked"


@contextmanager
def tiny_pages() -> Iterator[None]:
    """The paged containers (paged.py) page past 2 entries and are one again under 2; id
    pages of 2 ids, 2 hash pages: a few entries take them in and out of pages. Where
    paged.py is compiled its sizes are constants of the C code: the test skips there
    (it runs in make pytest, pure Python)."""
    if is_compiled(paged):
        pytest.skip("paged.py is compiled here: its page sizes cannot be shrunk")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paged, "SPLIT_AT", 2)
        mp.setattr(paged, "MERGE_AT", 2)
        mp.setattr(paged, "PAGE_BITS", 1)
        mp.setattr(paged, "HASH_PAGES", 2)
        yield
