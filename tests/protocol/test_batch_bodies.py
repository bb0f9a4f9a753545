"""A batch PUT's bodies are checked in one scan (``first_body_problem``): it must name
exactly the body, and give exactly the reason, that checking them one by one would."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.bodies import body_problem, first_body_problem
from broker.protocol.codec import Invalid, decode
from tests.protocol.test_bodies import VALUES, _nested

RAW_BODIES = st.sampled_from(
    [
        b"1e999",
        b"-1e-999",
        b"[1E+400]",
        b'"node-1234 e000"',
        b"123456789012345678901",
        b"1234567890",
        b'{"a":"1e308"}',
        b"1e308",
        b"12345678901-234567890",
    ]
)


def one_by_one(bodies: list[bytes]) -> tuple[int, str] | None:
    for i, body in enumerate(bodies):
        problem = body_problem(body)
        if problem is not None:
            return i, problem
    return None


@settings(max_examples=300)
@given(
    st.lists(
        st.builds(lambda v, d: msgspec.json.encode(_nested(d, v)), VALUES, st.integers(0, 70))
        | RAW_BODIES,
        min_size=1,
        max_size=8,
    )
)
def test_one_scan_of_a_batch_finds_what_one_check_per_body_finds(bodies: list[bytes]) -> None:
    assert first_body_problem(bodies) == one_by_one(bodies)
    raws = [msgspec.Raw(b) for b in bodies]  # as the codec passes them
    assert first_body_problem(raws) == one_by_one(bodies)


def test_numbers_never_run_from_one_body_into_the_next() -> None:
    halves = [b"1234567890", b"123456789"]  # 19 digits together, 10 and 9 apart
    assert first_body_problem(halves) is None
    assert first_body_problem([b'"a e"', b"000"]) is None  # "e" + "000" across the join


def test_a_batch_names_the_first_bad_body_whatever_its_place() -> None:
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    messages = [{"body": 1}, {"body": 2}, {"body": deep}, {"body": 3}]
    got = decode(msgspec.json.encode({"op": "PUT", "queue": "q", "messages": messages}), 1 << 20)
    assert isinstance(got, Invalid)
    assert got.error.message.startswith("`messages[2].body`: ")
    big = [{"body": "fine"}] * 5 + [{"body": 2**70}]
    got = decode(msgspec.json.encode({"op": "PUT", "queue": "q", "messages": big}), 1 << 20)
    assert isinstance(got, Invalid) and "`messages[5].body`" in got.error.message


def test_a_batch_of_strings_passes_and_a_body_among_them_that_is_not_one_is_still_checked() -> None:
    strings = [b'"1e999"', b'"' + b"[" * 70 + b'"', b'"12345678901234567890"', b'""']
    assert first_body_problem(strings) is None
    deep = b"[" * 70 + b"]" * 70
    for place in range(len(strings) + 1):
        bodies = [*strings[:place], deep, *strings[place:]]
        assert first_body_problem(bodies) == one_by_one(bodies) == (place, body_problem(deep))
        raws = [msgspec.Raw(b) for b in bodies]
        assert first_body_problem(raws) == (place, body_problem(deep))
    assert first_body_problem([*strings, b"1"]) is None  # a number is checked, and fine
