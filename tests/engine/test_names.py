"""Pages of queue names (broker/engine/names.py) against a naive model, a sorted list;
the engine keeps its index in step with its table as queues come and go; and the
Redis backend's pages of a list held whole (broker/backend/names.py) are the same."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.backend.names import page_of
from broker.engine import names as names_module
from broker.engine.names import SortedNames
from tests.engine.helpers import make_engine, put

NAMES = st.text(alphabet="abc.", min_size=1, max_size=4)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), NAMES),
        st.tuples(st.just("discard"), NAMES),
        st.tuples(st.just("list"), st.text(alphabet="abc.", max_size=2), st.integers(1, 5)),
    ),
    max_size=80,
)


def _walk(names: SortedNames, prefix: str, limit: int) -> list[str]:
    """Every page of a listing, until there is no ``next``."""
    out: list[str] = []
    cursor: str | None = None
    for _ in range(len(names) + 2):  # bounded: each page but the last is full
        page, cursor = names.page(prefix, cursor, limit)
        assert len(page) <= limit
        out += page
        if cursor is None:
            return out
        assert page and cursor == page[-1]
    raise AssertionError("the listing did not end")


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_pages_list_exactly_the_names_in_order(ops: list[tuple[Any, ...]]) -> None:
    model: set[str] = set()
    names = SortedNames()
    for op, *args in ops:
        if op == "add":
            model.add(args[0])
            names.add(args[0])
        elif op == "discard":
            model.discard(args[0])
            names.discard(args[0])
        else:
            prefix, limit = args
            expected = sorted(n for n in model if n.startswith(prefix))
            assert _walk(names, prefix, limit) == expected
        assert len(names) == len(model) and list(names) == sorted(model)


def test_a_name_added_during_a_listing_shows_if_it_is_past_the_cursor() -> None:
    names = SortedNames(["a", "c", "e"])
    page, cursor = names.page("", None, 1)
    assert (page, cursor) == (["a"], "a")
    names.add("b")  # b sorts before the cursor's next, f after
    names.add("f")
    names.discard("c")
    page, cursor = names.page("", cursor, 2)
    assert (page, cursor) == (["b", "e"], "e")
    assert names.page("", cursor, 2) == (["f"], None)


def test_a_cursor_outside_the_prefix_ends_or_starts_the_listing() -> None:
    names = SortedNames(["a1", "b1", "b2", "c1"])
    assert names.page("b", "a9", 10) == (["b1", "b2"], None)  # before: from the start
    assert names.page("b", "zz", 10) == ([], None)  # after: nothing left
    assert names.page("b", "b1", 10) == (["b2"], None)


def test_sorted_names_split_and_shrink() -> None:
    names = SortedNames()
    for i in reversed(range(3 * names_module.LOAD)):
        names.add(f"{i:06}")
    names.add("000001")  # already there
    assert len(names) == 3 * names_module.LOAD
    assert list(names.from_("", inclusive=True)) == [f"{i:06}" for i in range(len(names))]
    for i in range(0, len(names), 2):
        names.discard(f"{i:06}")
    names.discard("missing")
    assert list(names.from_("000100", inclusive=False))[:2] == ["000101", "000103"]
    assert list(names.from_("000101", inclusive=True))[:1] == ["000101"]
    assert list(names.from_("zzz", inclusive=True)) == []


def test_a_bucket_never_holds_more_than_twice_load() -> None:
    """What bounds the cost of one add or discard: O(log n + LOAD), never the set's size."""
    names = SortedNames()
    for i in range(20 * names_module.LOAD):
        names.add(f"{(i * 7919) % 100_003:06}")  # out of order
    assert max(len(b) for b in names._buckets) <= 2 * names_module.LOAD
    assert list(names) == sorted(names)


def test_the_engine_index_follows_queues_made_deleted_and_forgotten() -> None:
    e = make_engine()
    put(e, "b", "x")
    e.configure(0.0, "a", {"lease_s": 5.0})
    e.pause(0.0, "c")
    put(e, "d", "y")
    assert e.queue_page("", None, 10) == (["a", "b", "c", "d"], None)
    assert e.queue_page("", None, 2) == (["a", "b"], "b")
    e.delete(0.0, "b")
    assert e.queue_page("", "a", 10) == (["c", "d"], None)
    e.resume(0.0, "c")
    e.purge(0.0, "d")
    forgotten = sum(e.forget_idle(t * 6.0) for t in range(21))  # two passes of 60 s
    assert forgotten == 2 and e.queue_page("", None, 10) == (["a"], None)  # a keeps settings
    put(e, "b", "again", now=200.0)
    assert e.queue_names() == ["a", "b"]


@settings(max_examples=300, deadline=None)
@given(
    st.sets(NAMES, max_size=30),
    st.text(alphabet="abc.", max_size=2),
    st.one_of(st.none(), NAMES),
    st.integers(1, 5),
)
def test_a_page_of_a_sorted_list_is_the_index_page(
    names: set[str], prefix: str, after: str | None, limit: int
) -> None:
    """The Redis backend pages its sorted list of names with ``page_of``: the same page
    and cursor as the in-memory index, whatever the cursor (even one not in the list)."""
    expected = SortedNames(names).page(prefix, after, limit)
    assert page_of(sorted(names), prefix, after, limit) == expected
