"""Queue names: 1-200 characters of A-Z a-z 0-9 _ - . : (protocol.md section 4)."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.codec import Invalid, decode
from broker.protocol.requests import Put

RULE = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


def _verdict(name: str) -> bool:
    result = decode(msgspec.json.encode({"op": "PUT", "queue": name, "body": 1}), 1 << 20)
    if isinstance(result, Invalid):
        assert result.error.code == "bad_request"
        assert "queue" in result.error.message
        return False
    assert isinstance(result, Put) and result.queue == name
    return True


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=210)
    | st.text("azAZ09_.:-", min_size=195, max_size=205)
    | st.text(st.characters(codec="utf-8"), max_size=5)
    | st.text("az09", min_size=1, max_size=3).map(lambda s: s + "\n")  # `$` matched before it
)
def test_queue_name_is_accepted_exactly_when_it_matches_the_rule(name: str) -> None:
    assert _verdict(name) == bool(RULE.fullmatch(name))


def test_queue_name_edges() -> None:
    for good in ("a", "A-z_0.9:x", "q" * 200, "jobs.dead", "-", ":::"):
        assert _verdict(good), good
    for bad in ("", "q" * 201, "a b", "a/b", "é", "q\x00", "q\n", "\uff51", "a\u200b", "*"):
        assert not _verdict(bad), bad


@pytest.mark.parametrize("op", ["PUT", "GET", "STATS", "PURGE"])
def test_letters_and_digits_outside_ascii_are_refused_by_every_op(op: str) -> None:
    """The codec accepts names of ASCII letters and digits in two C calls (``isalnum``,
    ``isascii``); letters and digits of other scripts pass ``isalnum`` but not the rule."""
    for name in ("caf\u00e9", "\u0663", "q\uff41", "\u00b2", "abc", "a-b_c.d:e"):
        line = msgspec.json.encode(
            {"op": op, "queue": name, "body": 1} if op == "PUT" else {"op": op, "queue": name}
        )
        result = decode(line, 1 << 20)
        if RULE.fullmatch(name):
            assert not isinstance(result, Invalid), (op, name, result)
        else:
            assert isinstance(result, Invalid) and "queue" in result.error.message, (op, name)
