"""Hostile input: the codec and framer under Hypothesis, then the server under a
corpus of nasty lines and floods. Every line gets an answer (or the one
connection is closed) and a well-behaved second client sees no change.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.errors import ErrorCode
from broker.protocol.codec import Invalid, decode
from broker.protocol.framing import TOO_LONG, Frame, LineFramer
from broker.protocol.requests import REQUEST_TYPES, Quit, Request
from tests.conftest import ServerFactory
from tests.support import LineClient

CODES = {str(c) for c in ErrorCode}
MAX_LINE = 4096
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_SLOW = settings(max_examples=20_000, deadline=None)

# ------------------------------------------------------------------ inputs

MINIMAL: dict[str, dict[str, Any]] = {
    "PUT": {"queue": "q", "body": 1},
    "GET": {"queue": "q"},
    "ACK": {"id": "x"},
    "NACK": {"id": "x"},
    "TOUCH": {"id": "x"},
    "INFO": {"id": "x"},
    "STATS": {},
    "QUEUES": {},
    "PURGE": {"queue": "q"},
    "REDRIVE": {"queue": "q"},
    "REMOVE": {"queue": "q", "ids": ["x"]},
    "DELETE": {"queue": "q"},
    "PAUSE": {"queue": "q"},
    "RESUME": {"queue": "q"},
    "CONFIG": {"queue": "q"},
    "PING": {},
    "AUTH": {"token": "t"},
    "CANCEL": {"get": "r"},
    "PEEK": {"queue": "q"},
}
WRONG: list[Any] = [
    None, True, False, 0, -1, 2**63, 2**70, -(2**70), 1.5, -1e308, float("1e300"),
    "", "x", "\u0000", "\U0001f600" * 300, "q" * 5000, [], [1, "a"], {}, {"a": {"b": []}},
]  # fmt: skip


def wrong_type_lines() -> list[bytes]:
    """Every field of every op (but QUIT) set to every wrong-ish value, plus unknown fields."""
    lines: list[bytes] = []
    for cls in REQUEST_TYPES:
        if cls is Quit:
            continue
        op = str(cls.__struct_config__.tag)
        base = {"op": op, **MINIMAL[op]}
        for field in (*cls.__struct_fields__, "op", "nonsense"):
            for value in WRONG:
                if field == "wait" and isinstance(value, (int, float)) and 0 < value <= 3600:
                    continue  # a valid wait: not hostile, just slow
                lines.append(msgspec.json.encode({**base, field: value}))
    return lines


def nasty_lines(max_line: int) -> list[bytes]:
    put = b'{"op":"PUT","queue":"q","body":{"a":[1,2,{"b":"c"}]},"rid":"r"}'
    return [
        *(put[:i] for i in range(1, len(put))),  # every truncation
        b'{"op":"PUT","queue":"q","body":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"op":"PUT","queue":"q","body":' + b"[" * 100_000,
        b"[" * 100_000,
        b'{"rid":' + b"{" * 50_000,
        b"PUT q " + b"[" * 100_000,
        b'{"op":"GET","queue":"q","max":' + b"9" * 3000 + b"}",
        b'{"op":"GET","queue":"q","max":1e99999}',
        b'{"op":"PUT","queue":"q","body":1,"priority":-1e400}',
        b'{"op":"PUT","queue":"q","body":"\xff\xfe"}',
        b'{"op":"PUT","queue":"q\xc0\x80","body":1}',
        b"\xed\xa0\x80",  # an encoded surrogate
        b'{"op":"PUT","queue":"q","body":"\\ud800"}',
        b'{"op":"PUT","queue":"q\x00","body":1}',
        b"\x00" * 100,
        b'{"op":"PI\x00NG"}',
        b"PUT q \x00\x01\x02",
        b'{"op":"PUT","op":"PUT","queue":"q","body":1}',
        b'{"op":"PING"}{"op":"PING"}',
        b'{"op":"PING"} trailing',
        b"\xef\xbb\xbf" + b'{"op":"PING"}',  # a BOM
        b"nul\x00bytes in shorthand",
        b'{"op":"PUT","queue":"q","body":' + b"x" * (max_line - 40) + b"}",  # at the limit
        b"P" * max_line,  # exactly at the limit
        b"P" * (max_line + 1),  # one over
        b"Q" * (max_line * 3),  # far over
    ]


def random_garbage(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(1, 300)) for _ in range(n)]


# ------------------------------------------------------------------- codec


def _check(result: Request | Invalid) -> None:
    if isinstance(result, Invalid):
        assert str(result.error.code) in CODES
        assert isinstance(result.error.message, str) and result.error.message
    else:
        assert type(result) in REQUEST_TYPES


@FUZZ
@given(st.binary(max_size=400))
def test_decode_random_bytes_returns_request_or_invalid(line: bytes) -> None:
    _check(decode(line, MAX_LINE))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@FUZZ
@given(
    st.sampled_from([*sorted(MINIMAL), "QUIT", "put", "NOPE"]),
    st.dictionaries(
        st.sampled_from(
            [
                *("queue", "body", "messages", "id", "ids", "key", "max", "lease", "wait"),
                *("delay", "priority", "max_attempts", "rid", "token", "x"),
            ]
        ),
        json_values,
        max_size=5,
    ),
    st.integers(min_value=0, max_value=400),
)
def test_decode_structured_junk_and_truncations(op: str, fields: dict[str, Any], cut: int) -> None:
    line = msgspec.json.encode({"op": op, **fields})
    _check(decode(line, MAX_LINE))
    _check(decode(line[:cut], MAX_LINE))
    shorthand = (op + " " + " ".join(str(v) for v in fields.values())).encode()
    _check(decode(shorthand, MAX_LINE))


def test_decode_nasty_and_wrong_typed_lines() -> None:
    framer = LineFramer(MAX_LINE)
    for line in [*nasty_lines(MAX_LINE), *wrong_type_lines()]:
        for frame in framer.feed(line + b"\n"):
            _check(decode(frame, MAX_LINE))


def _frames_at_once(data: bytes, max_line: int) -> list[Frame]:
    return LineFramer(max_line).feed(data)


@FUZZ
@given(
    st.lists(
        st.binary(max_size=90) | st.sampled_from([b"\n", b"\r\n", b"\r", b" \n", b"x" * 200]),
        max_size=30,
    ).map(b"".join),
    st.integers(min_value=64, max_value=100),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=10),
)
def test_framer_any_split_equals_feed_at_once(data: bytes, max_line: int, cuts: list[int]) -> None:
    whole = _frames_at_once(data, max_line)
    framer = LineFramer(max_line)
    one_by_one = [f for i in range(len(data)) for f in framer.feed(data[i : i + 1])]
    assert one_by_one == whole
    framer = LineFramer(max_line)
    bounds = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
    pieces = [f for a, b in itertools.pairwise(bounds) for f in framer.feed(data[a:b])]
    assert pieces == whole
    assert framer.buffered <= max_line + 1
    for frame in whole:
        assert frame is TOO_LONG or (isinstance(frame, bytes) and len(frame) <= max_line)


@pytest.mark.slow
@FUZZ_SLOW
@given(st.binary(max_size=2000))
def test_decode_random_bytes_long_run(line: bytes) -> None:
    _check(decode(line, MAX_LINE))


# ------------------------------------------------------------------ server


async def _replies_until(c: LineClient, rid: str, bound: int) -> list[dict[str, Any]]:
    """Read replies until the one with ``rid`` (at most ``bound`` replies)."""
    out: list[dict[str, Any]] = []
    for _ in range(bound):
        reply = await c.reply(timeout=20)
        out.append(reply)
        if reply.get("rid") == rid:
            return out
    raise AssertionError(f"no reply with rid {rid!r} within {bound} replies")


def _assert_well_formed(reply: dict[str, Any]) -> None:
    assert isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        assert reply["error"] in CODES, reply
        assert isinstance(reply["message"], str) and reply["message"], reply


async def _hostile_session(port: int, lines: list[bytes], chunk: int, max_line: int) -> None:
    async with (
        await LineClient.connect(port) as bad,
        await LineClient.connect(port) as good,
    ):
        assert (await good.call(op="PUT", queue="calm", body="kept"))["ok"] is True
        data = b"\n".join(lines) + b'\n{"op":"PING","rid":"sentinel"}\n'
        sender = asyncio.ensure_future(_send_in_chunks(bad, data, chunk))
        replies = await _replies_until(bad, "sentinel", bound=len(data))
        await sender
        for reply in replies:
            _assert_well_formed(reply)
        # exactly one reply per line (blank lines get none)
        assert len(replies) == len(LineFramer(max_line).feed(data))
        assert replies[-1] == {"ok": True, "rid": "sentinel"}
        # the bystander sees no change
        got = await good.call(op="GET", queue="calm")
        assert [m["body"] for m in got["messages"]] == ["kept"]
        assert await good.call(op="PING", rid=1) == {"ok": True, "rid": 1}


async def _send_in_chunks(c: LineClient, data: bytes, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        c.writer.write(data[i : i + chunk])
        await c.writer.drain()


@pytest.mark.parametrize("chunk", [1 << 20, 4096, 7])
async def test_server_answers_every_hostile_line(server_factory: ServerFactory, chunk: int) -> None:
    max_line = 8192
    lines = nasty_lines(max_line) + wrong_type_lines() + random_garbage(seed=chunk, n=300)
    if chunk < 100:  # byte-trickling the 100k-deep lines is slow and adds nothing
        lines = [line for line in lines if len(line) < 2 * max_line]
    async with server_factory(max_line=max_line) as srv:
        await _hostile_session(srv.port, lines, chunk, max_line)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(20))
async def test_server_hostile_long_run(server_factory: ServerFactory, seed: int) -> None:
    async with server_factory(max_line=8192) as srv:
        lines = random_garbage(seed=1000 + seed, n=5000) + nasty_lines(8192)
        random.Random(seed).shuffle(lines)
        await _hostile_session(srv.port, lines, random.Random(seed).randrange(1, 9000), 8192)


async def test_flood_of_tiny_requests_leaves_others_served(server_factory: ServerFactory) -> None:
    n = 50_000
    async with (
        server_factory() as srv,
        await LineClient.connect(srv.port) as flood,
        await LineClient.connect(srv.port) as good,
    ):
        flood.writer.write(b"\n" * 100_000 + b"PING\n" * n)
        sender = asyncio.ensure_future(flood.writer.drain())
        # while the flood is being served, the other client is answered
        for i in range(20):
            assert (await good.call(op="PUT", queue="g", body=i, rid=i))["rid"] == i
        for _ in range(n):
            assert await flood.reply(timeout=20) == {"ok": True}
        await sender
        assert (await good.call(op="STATS", queue="g"))["queues"]["g"]["put"] == 20
