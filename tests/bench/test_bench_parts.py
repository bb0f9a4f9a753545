"""The bench's parts, one at a time: the floor server, the adapters' reply parsing,
cutting a run into load processes and merging what they saw, and the report."""

from __future__ import annotations

import asyncio
import socket
from array import array
from collections.abc import Iterator
from typing import Any

import pytest

from broker.bench import procs
from broker.bench.adapters import Adapter, Beanstalkd, Redis
from broker.bench.fleet import LoadProcess, Result, merge, shares_of
from broker.bench.procs import BenchError
from broker.bench.report import summarize, table, targets
from broker.bench.where import Where
from broker.bench.worker import Go, Job, Ready
from broker.bench.workloads import Plan, Tally

# ------------------------------------------------------------------ the floor


@pytest.fixture
def floor() -> Iterator[procs.BrokerProcess]:
    server = procs.start("floor")
    try:
        yield server
    finally:
        server.stop()


class Line:
    """A blocking line client with a bound on every read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((procs.HOST, port), timeout=10)
        self.file = self.sock.makefile("rb")

    def send(self, *lines: bytes) -> None:
        self.sock.sendall(b"".join(line + b"\n" for line in lines))

    def reply(self) -> bytes:
        return self.file.readline().rstrip(b"\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_the_floor_speaks_put_get_ack_and_their_batch_forms(floor: procs.BrokerProcess) -> None:
    c = Line(floor.port)
    try:
        c.send(
            b'{"op":"GET","queue":"q","max":3}',
            b'{"op":"PUT","queue":"q","body":{"a":[1]}}',
            b'{"op":"PUT","queue":"q","messages":[{"body":"b"},{"body":3}]}',
            b'{"op":"GET","queue":"q","max":2,"lease":60}',
            b'{"op":"GET","queue":"q","max":5}',
        )
        assert c.reply() == b'{"ok":true,"messages":[]}'
        assert c.reply() == b'{"ok":true,"id":"1"}'
        assert c.reply() == b'{"ok":true,"ids":["2","3"]}'
        assert c.reply() == (
            b'{"ok":true,"messages":[{"id":"1","queue":"q","body":{"a":[1]},"attempts":1},'
            b'{"id":"2","queue":"q","body":"b","attempts":1}]}'
        )
        assert c.reply() == b'{"ok":true,"messages":[{"id":"3","queue":"q","body":3,"attempts":1}]}'
        c.send(
            b'{"op":"ACK","id":"1"}', b'{"op":"ACK","ids":["2","3","9"]}', b'{"op":"ACK","id":"1"}'
        )
        assert c.reply() == b'{"ok":true}'
        assert c.reply() == b'{"ok":true,"acked":2,"not_leased":[],"not_found":["9"]}'
        assert c.reply() == b'{"ok":false,"error":"not_found"}'
    finally:
        c.close()


def test_a_waiting_get_on_the_floor_is_served_by_the_next_put(floor: procs.BrokerProcess) -> None:
    consumer, producer = Line(floor.port), Line(floor.port)
    try:
        consumer.send(b'{"op":"GET","queue":"w","max":2,"wait":5}', b'{"op":"GET","queue":"x"}')
        assert consumer.reply() == b'{"ok":true,"messages":[]}'  # the waiting GET holds nothing up
        producer.send(b'{"op":"PUT","queue":"w","body":7}')
        assert producer.reply() == b'{"ok":true,"id":"1"}'
        assert (
            consumer.reply()
            == b'{"ok":true,"messages":[{"id":"1","queue":"w","body":7,"attempts":1}]}'
        )
    finally:
        consumer.close()
        producer.close()


# ------------------------------------------------------------ reply parsing


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_put(self, n: int) -> None:
        self.events.append(("put", n))

    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None:
        self.events.append(("got", items))

    def on_acked(self, conn: Adapter, n: int) -> None:
        self.events.append(("acked", n))

    def on_error(self, text: str) -> None:
        self.events.append(("error", text))


class Wire(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _adapter(cls: type[Adapter], sink: Recorder | None = None) -> tuple[Adapter, Recorder, Wire]:
    sink, wire = sink or Recorder(), Wire()
    conn = cls(sink, "bench", 3)
    conn.connection_made(wire)
    return conn, sink, wire


PEER_CASES: dict[type[Adapter], tuple[bytes, list[tuple[str, Any]]]] = {
    Redis: (
        b":2\r\n$5\r\nhello\r\n*-1\r\n$3\r\nbye\r\n:1\r\n:1\r\n",
        [("put", 2), ("got", [(b"hello", b"hello"), (b"bye", b"bye")]), ("acked", 2)],
    ),
    Beanstalkd: (
        b"INSERTED 1\r\nINSERTED 2\r\nRESERVED 1 5\r\nhello\r\nTIMED_OUT\r\nRESERVED 2 3\r\nbye\r\n"
        b"DELETED\r\nDELETED\r\n",
        [("put", 1), ("put", 1), ("got", [(b"1", b"hello"), (b"2", b"bye")]), ("acked", 2)],
    ),
}


@pytest.mark.parametrize("cls", list(PEER_CASES))
@pytest.mark.parametrize("step", [1, 3, 1000])
async def test_peer_replies_fold_into_operations_however_they_are_cut(
    cls: type[Adapter], step: int
) -> None:
    replies, expected = PEER_CASES[cls]
    conn, sink, wire = _adapter(cls)
    conn.put([b"hello", b"bye"])
    conn.get(3)
    conn.ack([b"1", b"2"])
    assert len(wire.written) == 3  # uncorked: one write per operation
    for i in range(0, len(replies), step):
        conn.data_received(replies[i : i + step])
    assert sink.events == expected


class AckAndGetMore(Recorder):
    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None:
        conn.ack([items[0][0]])
        conn.get(2)


async def test_requests_sent_while_replies_are_handled_go_out_in_one_write() -> None:
    conn, _, wire = _adapter(Redis, AckAndGetMore())
    conn.get(1)
    wire.written.clear()
    conn.data_received(b"$5\r\nhello\r\n")
    assert len(wire.written) == 1
    assert wire.written[0].count(b"LREM") == 1 and wire.written[0].count(b"BLMOVE") == 2


@pytest.mark.parametrize(
    ("cls", "replies"),
    [
        (Redis, b":0\r\n"),  # LREM removed nothing: the ack did not happen
        (Redis, b"-ERR wrong\r\n"),
        (Beanstalkd, b"NOT_FOUND\r\n"),
    ],
)
async def test_an_error_reply_to_an_ack_is_reported(cls: type[Adapter], replies: bytes) -> None:
    conn, sink, _ = _adapter(cls)
    conn.ack([b"1"])
    conn.data_received(replies)
    assert [kind for kind, _ in sink.events] == ["error"]
    assert replies.strip().decode() in sink.events[0][1]


async def test_a_reply_to_nothing_is_reported() -> None:
    conn, sink, _ = _adapter(Redis)
    conn.data_received(b":1\r\n")
    assert [kind for kind, _ in sink.events] == ["error"]


# ------------------------------------------------- load processes and merging


@pytest.mark.parametrize(("producers", "consumers"), [(4, 4), (1, 3), (2, 1)])
@pytest.mark.parametrize("load_procs", [1, 2, 3, 8])
def test_shares_cover_the_run_once_and_keep_the_sides_apart(
    producers: int, consumers: int, load_procs: int
) -> None:
    plan = Plan(mode="pipe", messages=1001, producers=producers, consumers=consumers)
    shares = shares_of(plan, load_procs)
    assert len(shares) == min(load_procs, producers + consumers)
    ranges = sorted((lo, hi) for s in shares for lo, hi, _ in s.producers)
    assert len(ranges) == producers
    assert [lo for lo, _ in ranges] == [0] + [hi for _, hi in ranges[:-1]] and ranges[-1][1] == 1001
    assert sum(q for s in shares for q, _ in s.consumers) == 1001
    assert len([q for s in shares for q, _ in s.consumers]) == consumers
    slots = [slot for s in shares for *_, slot in s.producers] + [
        slot for s in shares for _, slot in s.consumers
    ]
    assert sorted(slots) == list(range(producers + consumers))
    if len(shares) > 1:
        assert all(not (s.producers and s.consumers) for s in shares)


async def test_a_load_process_told_to_stop_mid_run_exits_by_itself(
    floor: procs.BrokerProcess,
) -> None:
    plan = Plan(mode="pipe", messages=1_000_000, window=4)
    idle, busy = await LoadProcess.start(), await LoadProcess.start()
    try:
        await busy.send(
            Job(adapter="wonderq", where=Where(floor.port), plan=plan, share=shares_of(plan, 1)[0])
        )
        await asyncio.wait_for(busy.expect(Ready), 30)
        await busy.send(Go(phase="all"))
    finally:
        await idle.stop()
        await busy.stop()
    assert (idle.proc.returncode, busy.proc.returncode) == (0, 0)  # not killed


def _tally(n: int, delivered: list[int], **fields: Any) -> Tally:
    seen = bytearray(n)
    for i in delivered:
        seen[i] = 1
    base: dict[str, Any] = {
        "duplicates": 0,
        "latencies": array("d", [0.001] * len(delivered)).tobytes(),
        "put": 0,
        "got": len(delivered),
        "acked": len(delivered),
        "puts_done_at": 0.0,
        "delivered_at": 11.0,
        "acked_at": 12.0,
        "cpu_s": 0.5,
        "errors": [],
    }
    return Tally(delivered=bytes(seen), **{**base, **fields})


def test_merge_counts_every_message_once_across_processes() -> None:
    plan = Plan(mode="pipe", messages=4)
    producer = _tally(4, [], put=4, got=0, acked=0, puts_done_at=11.0, acked_at=0.0, cpu_s=0.25)
    tallies = [producer, _tally(4, [0, 1]), _tally(4, [2, 3], acked_at=14.0)]
    result = Result(broker="wonderq", mode="pipe", messages=4)
    merge(result, plan, tallies, started_at=10.0, cpu_s=0.4)
    assert result.exactly_once and result.delivered_once == 4 and result.acked == 4
    assert result.acked_per_s == 1.0  # 4 messages from 10.0 to the last ack at 14.0
    assert result.put_per_s == 4.0
    assert result.latency_ms["p50"] == 1.0
    assert result.server_cpu_us_per_msg == 100_000.0 and result.server_cpu_pct == 10.0
    assert result.client_cpu_max_pct == 25.0  # 0.5 s of CPU over 2 s
    assert result.load_procs == 3


def test_merge_finds_a_message_delivered_to_two_processes_and_one_never_delivered() -> None:
    plan = Plan(mode="pipe", messages=4)
    tallies = [_tally(4, [0, 1]), _tally(4, [1, 2], duplicates=1, errors=["an ACK failed"])]
    result = Result(broker="redis", mode="pipe", messages=4)
    merge(result, plan, tallies, started_at=10.0, cpu_s=0.0)
    assert result.duplicates == 2  # 1 seen twice by one process, 1 by two processes
    assert result.missing == 1 and result.delivered_once == 3
    assert not result.exactly_once
    assert result.notes == ["an ACK failed"]


# ------------------------------------------------------------------ the report


def _cpu(broker: str, mode: str, us: float, trial: int = 1) -> Result:
    return Result(
        broker=broker,
        mode=mode,
        messages=10,
        acked_per_s=100.0,
        server_cpu_us_per_msg=us,
        trial=trial,
        exactly_once=True,
    )


def test_server_cpu_is_judged_against_the_floor_trial_by_trial() -> None:
    results = [
        _cpu("wonderq", "pipe", 12.0, 1),
        _cpu("floor", "pipe", 4.0, 1),
        _cpu("wonderq", "pipe", 5.0, 2),
        _cpu("floor", "pipe", 4.0, 2),
        _cpu("wonderq", "pipe", 6.0, 3),
        _cpu("floor", "pipe", 5.0, 3),
    ]
    assert targets(results, None) == [
        {
            "target": "pipe: server CPU / floor",
            "figure": 1.25,
            "goal": "<= 1.3x",
            "reached": True,
            "trials": [3.0, 1.25, 1.2],
        }
    ]
    rows = summarize(results)
    text = table(rows)
    wonderq_line = next(line for line in text.splitlines() if " wonderq " in line)
    assert " 1.50 " in wonderq_line  # the medians: 6.0 us against the floor's 4.0


def _done(**fields: Any) -> Result:
    """A run that completed: every message delivered once."""
    return Result(exactly_once=True, **fields)


def test_targets_use_only_what_the_run_measured() -> None:
    mine = _done(broker="wonderq", mode="rr", messages=10, acked_per_s=200.0)
    peer = _done(broker="beanstalkd", mode="rr", messages=10, acked_per_s=100.0)
    assert targets([mine, peer], None) == [
        {"target": "rr: WonderQ / beanstalkd", "figure": 2.0, "goal": ">= 1.0x", "reached": True}
    ]
    assert targets([mine], None) == []


def test_durable_targets_compare_like_with_like() -> None:
    mine = _done(broker="wonderq/always", mode="rr", messages=10, acked_per_s=300.0)
    peer = _done(broker="beanstalkd/always", mode="rr", messages=10, acked_per_s=100.0)
    pipe = _done(broker="wonderq/always", mode="pipe", messages=10, acked_per_s=50.0)
    redis = _done(broker="redis/always", mode="pipe", messages=10, acked_per_s=100.0)
    assert targets([mine, peer, pipe, redis], "always") == [
        {
            "target": "durable always rr: WonderQ / beanstalkd",
            "figure": 3.0,
            "goal": ">= 3.0x",
            "reached": True,
        },
        {
            "target": "durable always pipe: WonderQ / redis",
            "figure": 0.5,
            "goal": ">= 1.0x",
            "reached": False,
        },
    ]


def _rr(broker: str, trial: int, acked_per_s: float, *notes: str) -> Result:
    return Result(
        broker=broker,
        mode="rr",
        messages=10,
        acked_per_s=acked_per_s,
        latency_ms={"p99": acked_per_s / 100},
        trial=trial,
        exactly_once=True,
        notes=list(notes),
    )


def test_ratio_targets_are_the_median_of_each_trials_own_ratio() -> None:
    # trial 2 is slow for both: its ratio still counts as taken side by side
    results = [
        _rr("wonderq", 1, 300.0),
        _rr("beanstalkd", 1, 100.0),
        _rr("wonderq", 2, 30.0),
        _rr("beanstalkd", 2, 60.0),
        _rr("wonderq", 3, 200.0),
        _rr("beanstalkd", 3, 100.0),
    ]
    assert targets(results, None) == [
        {
            "target": "rr: WonderQ / beanstalkd",
            "figure": 2.0,
            "goal": ">= 1.0x",
            "reached": True,
            "trials": [3.0, 0.5, 2.0],
        }
    ]


def test_summary_rows_hold_the_median_of_the_trials() -> None:
    results = [
        _rr("wonderq", 1, 300.0),
        _rr("wonderq", 2, 100.0, "slow start"),
        _rr("wonderq", 3, 200.0),
    ]
    (row,) = summarize(results)
    assert row.trial == 0 and row.acked_per_s == 200.0
    assert row.latency_ms == {"p99": 2.0}
    assert row.messages == 30
    assert row.exactly_once
    assert row.notes == ["trial 2: slow start"]
    single = [_rr("wonderq", 1, 300.0)]
    assert summarize(single) == single


def test_a_failed_trial_is_left_out_of_the_medians_and_the_ratios() -> None:
    results = [
        _rr("wonderq", 1, 300.0),
        _rr("beanstalkd", 1, 100.0),
        _rr("wonderq", 2, 0.0, "failed: timed out after 600s"),
        _rr("beanstalkd", 2, 60.0),
        _rr("wonderq", 3, 200.0),
        _rr("beanstalkd", 3, 100.0),
    ]
    results[2].exactly_once = False
    assert targets(results, None)[0]["trials"] == [3.0, 2.0]
    wonderq = summarize(results)[0]
    assert wonderq.acked_per_s == 250.0  # the median of 300 and 200, not of 300, 0 and 200
    assert not wonderq.exactly_once
    assert wonderq.notes == ["trial 2: failed: timed out after 600s"]


# ------------------------------------------------------------ --backend redis


def test_queues_spread_producers_and_consumers_and_quotas_follow_them() -> None:
    plan = Plan(mode="batch", messages=1000, producers=12, consumers=24, queues=12)
    assert {plan.queue_of(p) for p in range(12)} == {f"bench{i}" for i in range(12)}
    assert plan.queue_of(12) == "bench0" and plan.queue_of(12 + 13) == "bench1"
    shares = shares_of(plan, 2)
    put_on = [0] * 12
    for s in shares:
        for lo, hi, slot in s.producers:
            put_on[slot % 12] += hi - lo
    taken_from = [0] * 12
    for s in shares:
        for quota, slot in s.consumers:
            taken_from[(slot - 12) % 12] += quota
    assert put_on == taken_from and sum(put_on) == 1000  # each queue drained exactly
    assert Plan(mode="rr").queue_of(5) == "bench"  # one queue: as before


def test_a_queue_without_a_consumer_is_refused() -> None:
    with pytest.raises(BenchError, match="no consumer"):
        shares_of(Plan(mode="batch", messages=100, producers=4, consumers=2, queues=4), 2)


def test_with_several_nodes_a_message_crosses_from_one_node_to_another() -> None:
    plan = Plan(mode="pipe", producers=4, consumers=4)
    assert [plan.node_of(slot, 2) for slot in range(8)] == [0, 1, 0, 1, 1, 0, 1, 0]
    where = Where(7001, ports=(7001, 7011))
    assert where.node(1).port == 7011 and where.node(1).ports == ()
    assert Where(7001).node(3).port == 7001


def test_the_redis_targets_read_the_rows_of_the_run() -> None:
    rows = [
        _done(broker="wq+redis:1n", mode="batch", messages=10, acked_per_s=60_000.0),
        _done(broker="wq+redis:1n", mode="pipe", messages=10, store_cpu_us_per_msg=20.0),
        _done(broker="redis", mode="pipe", messages=10, store_cpu_us_per_msg=2.0),
        _done(broker="wq+redis:4n:12q", mode="pipe", messages=10, acked_per_s=30_000.0),
        _done(broker="wq+cluster:4n:12q", mode="pipe", messages=10, acked_per_s=45_000.0),
    ]
    got = {t["target"]: (t["figure"], t["reached"]) for t in targets(rows, None)}
    assert got == {
        "wq+redis:1n batch: end-to-end msg/s": (60_000, True),
        "wq+redis:1n pipe: Redis CPU / plain list's": (10.0, False),
        "wq+cluster:4n:12q pipe: e2e / one shard's": (1.5, True),
    }
