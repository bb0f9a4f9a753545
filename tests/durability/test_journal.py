"""The engine's journal, replayed into a fresh engine, gives back the same messages."""

from __future__ import annotations

import random

from broker.config import Config
from broker.durability import records as rec
from broker.durability.backend import restore_into
from broker.durability.journal import LogJournal
from broker.durability.replay import ReplayState, scan
from broker.engine import Engine, Message, NewMessage, State
from tests.engine.helpers import held

WALL = 5000.0  # wall clock minus engine clock in these tests


def journaled_engine(config: Config) -> tuple[Engine, list[bytes]]:
    out: list[bytes] = []
    return Engine(config, first_seq=1000, journal=LogJournal(out.append, WALL)), out


def replayed(config: Config, log: list[bytes], now: float) -> tuple[Engine, ReplayState]:
    state = ReplayState()
    result = scan(rec.frame(log), "mem", state) if log else None
    assert result is None or result.torn is None
    fresh = Engine(config, first_seq=1)
    restore_into(fresh, state, now, WALL)
    return fresh, state


def view(m: Message) -> tuple[object, ...]:
    state = State.READY if m.state == State.LEASED else m.state
    due = round(m.due_at, 6) if m.state == State.DELAYED else None
    return (m.seq, m.queue.name, m.body, m.key, m.priority, m.max_attempts, m.attempts,
            m.order, state, due, round(m.put_at, 6))  # fmt: skip


def delivery_order(engine: Engine, now: float) -> dict[str, list[int]]:
    engine.advance(now)
    owner = object()
    out: dict[str, list[int]] = {}
    for name in engine.queue_names():
        seqs = out[name] = []
        for _ in range(10_000):
            got = engine.get(now, name, owner, 1, 1000.0)
            if not got:
                break
            seqs.append(got[0].seq)
            engine.ack(now, owner, got[0].seq)
    return {name: seqs for name, seqs in out.items() if seqs}  # empty queues are not kept


def random_workload(engine: Engine, rng: random.Random, steps: int) -> float:
    now = 0.0
    owners = [object() for _ in range(3)]
    leased: list[tuple[object, int]] = []
    for _ in range(steps):
        now += rng.choice([0.0, 0.01, 0.5])
        op = rng.random()
        if op < 0.35:
            items = [
                NewMessage(
                    b'"%d"' % rng.randrange(1000),
                    key=rng.choice([None, None, "a", "b"]),
                    delay_s=rng.choice([0.0, 0.0, 0.0, 1.0, 100.0]),
                    priority=rng.choice([0, 0, 1, -1]),
                )
                for _ in range(rng.randint(1, 3))
            ]
            engine.put(now, rng.choice(["q", "r"]), items)
        elif op < 0.6:
            owner = rng.choice(owners)
            queue = rng.choice(["q", "r", "q.dead"])
            got = engine.get(now, queue, owner, rng.randint(1, 3), rng.choice([0.2, 50.0]))
            leased += [(owner, m.seq) for m in got or []]
        elif op < 0.85 and leased:
            owner, seq = leased.pop(rng.randrange(len(leased)))
            msg = engine.lookup(seq)
            if isinstance(msg, Message) and msg.state == State.LEASED and msg.owner is owner:
                if rng.random() < 0.5:
                    engine.ack(now, owner, seq)
                else:
                    engine.nack(now, owner, seq, rng.choice([0.0, 3.0]))
        elif op < 0.9:
            engine.disconnect(now, rng.choice(owners))
        elif op < 0.95:
            engine.redrive(now, rng.choice(["q", "r"]))
        elif op < 0.97:
            engine.purge(now, rng.choice(["q", "r"]))
        else:
            engine.advance(now)
    return now


def nack_all(engine: Engine, now: float) -> None:
    for m in held(engine):
        if m.state == State.LEASED:
            engine.nack(now, m.owner, m.seq)


def test_random_workloads_replay_to_the_same_state() -> None:
    config = Config(max_attempts=2)
    for seed in range(30):
        engine, log = journaled_engine(config)
        now = random_workload(engine, random.Random(seed), 300)
        engine.advance(now)  # delays that ended are ready in both
        fresh, _ = replayed(config, log, now)
        want = sorted(view(m) for m in held(engine))
        assert sorted(view(m) for m in held(fresh)) == want, seed
        assert fresh.next_seq >= engine.next_seq, seed
        nack_all(engine, now)  # with no lease left, both must deliver in the same order
        fresh, _ = replayed(config, log, now)
        assert delivery_order(fresh, now + 1000) == delivery_order(engine, now + 1000), seed


def test_a_delay_is_kept_in_wall_clock_time() -> None:
    config = Config()
    engine, log = journaled_engine(config)
    (seq,) = engine.put(10.0, "q", [NewMessage(b"1", delay_s=60.0)])
    [record] = log
    msg = rec.decoder.decode(rec.frame([record])[rec.HEADER_SIZE :])[0]
    assert isinstance(msg, rec.Msg) and msg.due_wall == 70.0 + WALL and msg.put_wall == 10.0 + WALL
    fresh, _ = replayed(config, log, now=50.0)  # restarted 40 s later: 20 s left
    restored = fresh.lookup(seq)
    assert isinstance(restored, Message) and restored.state == State.DELAYED
    assert restored.due_at == 70.0
    late, _ = replayed(config, log, now=80.0)  # restarted after the delay: ready
    restored = late.lookup(seq)
    assert isinstance(restored, Message) and restored.state == State.READY


def test_ids_after_a_restart_exceed_every_id_in_the_log() -> None:
    config = Config()
    engine, log = journaled_engine(config)
    owner = object()
    engine.put(0.0, "q", [NewMessage(b"1"), NewMessage(b"2")])
    for m in engine.get(0.0, "q", owner, 2, 10.0) or []:
        engine.ack(0.0, owner, m.seq)
    fresh, state = replayed(config, log, 1.0)
    assert held(fresh) == [] and state.hi == 1001
    assert fresh.put(1.0, "q", [NewMessage(b"3")]) == [1002]
