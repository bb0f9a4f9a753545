"""The body rule: nesting at most 64 levels, numbers that fit 64 bits (bodies.py, codec)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.bodies import INT_MAX, INT_MIN, MAX_DEPTH, body_problem
from broker.protocol.codec import Invalid, decode
from broker.protocol.requests import HEADER_BYTES_MAX, Put

JSON_INTS = st.integers(min_value=-(2**70), max_value=2**70)
SCALARS = (
    st.none()
    | st.booleans()
    | JSON_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='ab[{}]0123456789eE+-"\\', max_size=30)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=40,
)


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _model(value: Any, depth: int = 0) -> bool:
    """The rule, naively: may this value be stored?"""
    if isinstance(value, dict):
        return depth < MAX_DEPTH and all(_model(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return depth < MAX_DEPTH and all(_model(v, depth + 1) for v in value)
    if type(value) is int:
        return INT_MIN <= value <= INT_MAX
    return True


@settings(max_examples=400)
@given(VALUES, st.integers(min_value=0, max_value=70))
def test_the_rule_agrees_with_a_naive_model(value: Any, extra_depth: int) -> None:
    body = msgspec.json.encode(_nested(extra_depth, value))
    assert (body_problem(body) is None) == _model(_nested(extra_depth, value))


@pytest.mark.parametrize(
    "body",
    [
        b"1e999",
        b"-1e400",
        b'{"a":[1,2,1e999999]}',
        b"18446744073709551616",  # 2**64
        b"-9223372036854775809",  # -2**63 - 1
        b"123456789012345678901234567890",
        msgspec.json.encode(_nested(MAX_DEPTH + 1)),
        b"[" * 5000 + b"]" * 5000,  # far past any decoder's recursion limit
    ],
)
def test_bodies_no_client_can_read_are_refused(body: bytes) -> None:
    problem = body_problem(body)
    assert problem is not None and "64" in problem


@pytest.mark.parametrize(
    "body",
    [
        b"18446744073709551615",  # 2**64 - 1
        b"-9223372036854775808",  # -2**63
        b"1.7976931348623157e308",
        b"1e308",
        b"0.1234567890123456789012345",  # a long mantissa is a finite double
        msgspec.json.encode(_nested(MAX_DEPTH)),
        b'"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1e99999"',
        b'{"id":"12345678901234567890123","n":1}',  # digits in a string are text
    ],
)
def test_bodies_every_client_can_read_are_stored(body: bytes) -> None:
    assert body_problem(body) is None


def _decoded(**fields: Any) -> Put | Invalid:
    result = decode(msgspec.json.encode({"op": "PUT", "queue": "q", **fields}), 1 << 20)
    assert isinstance(result, Put | Invalid)
    return result


def test_the_codec_names_the_body_at_fault() -> None:
    single = decode(b'{"op":"PUT","queue":"q","body":1e999,"rid":7}', 1 << 20)
    assert isinstance(single, Invalid) and single.rid == 7
    assert single.error.code == "bad_request" and single.error.message.startswith("`body`:")
    batch = decode(b'{"op":"PUT","queue":"q","messages":[{"body":1},{"body":1e999}]}', 1 << 20)
    assert isinstance(batch, Invalid)
    assert batch.error.message.startswith("`messages[1].body`:")


def test_headers_are_bounded_by_count_and_bytes() -> None:
    ok = _decoded(body=1, headers={"traceparent": "00-abc-01", "content-type": "text/plain"})
    assert isinstance(ok, Put) and ok.headers == {
        "traceparent": "00-abc-01",
        "content-type": "text/plain",
    }
    many = _decoded(body=1, headers={f"h{i}": "v" for i in range(65)})
    assert isinstance(many, Invalid) and "headers" in many.error.message
    big = _decoded(body=1, headers={"a": "x" * HEADER_BYTES_MAX})
    assert isinstance(big, Invalid)
    assert big.error.message == (
        f"`headers` hold {HEADER_BYTES_MAX + 1} bytes of names and values; "
        f"the limit is {HEADER_BYTES_MAX}"
    )
    not_text = _decoded(body=1, headers={"a": 1})
    assert isinstance(not_text, Invalid) and "headers" in not_text.error.message


def test_dedup_ids_are_1_to_128_characters() -> None:
    assert isinstance(_decoded(body=1, dedup="x" * 128), Put)
    for bad in ("", "x" * 129):
        refused = _decoded(body=1, dedup=bad)
        assert isinstance(refused, Invalid) and "dedup" in refused.error.message
