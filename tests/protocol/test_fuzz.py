"""Hostile input to the codec and the framer, under Hypothesis: every line decodes to a
request or to the one protocol error, and framing does not depend on how the
bytes are split. (The server under the same corpus: tests/server/test_hostile_input.py.)
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.protocol.codec import Invalid, decode
from broker.protocol.framing import TOO_LONG, Frame, LineFramer
from broker.protocol.requests import REQUEST_TYPES, Request
from tests.protocol.hostile import CODES, MINIMAL, nasty_lines, wrong_type_lines

MAX_LINE = 4096
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_SLOW = settings(max_examples=20_000, deadline=None)


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
