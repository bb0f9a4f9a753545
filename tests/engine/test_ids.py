"""Wire ids: ``parse_ids`` (a batch at once) says what ``parse_id`` says of each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.engine import format_id, parse_id
from broker.engine.ids import parse_ids

# ids of ours, near misses (a character or a length off), and anything at all
_OURS = st.integers(min_value=0, max_value=16**24 - 1).map(format_id)
_NEAR = st.text(alphabet="0123456789abcdefABCDEFxX_+- \t\u00e9\u0660", max_size=26)
_IDS = st.lists(st.one_of(_OURS, _NEAR, st.text(max_size=30)), max_size=40)


@given(_IDS)
def test_parse_ids_agrees_with_parse_id(texts: list[str]) -> None:
    each = [parse_id(t) for t in texts]
    batch = parse_ids(texts)
    if None in each:
        assert batch is None
    else:
        assert batch == each


def test_parse_ids_edge_cases() -> None:
    assert parse_ids([]) == []
    assert parse_ids(["0", "f" * 24, "1a"]) == [0, 16**24 - 1, 26]
    for bad in ("", "f" * 25, "0x1", "1_0", " 1", "1 ", "+1", "-1", "A", "\u0661", "\ud800"):
        assert parse_ids(["1", bad]) is None, bad
