"""Pages of queue names (broker/backend/names.py) against a naive model: a sorted list."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.backend import names as names_module
from broker.backend.names import QueueIndex, SortedNames

NAMES = st.text(alphabet="abc.", min_size=1, max_size=4)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), NAMES),
        st.tuples(st.just("delete"), NAMES),
        st.tuples(st.just("recreate"), NAMES),
        st.tuples(st.just("list"), st.text(alphabet="abc.", max_size=2), st.integers(1, 5)),
    ),
    max_size=80,
)


def _walk(index: QueueIndex, table: dict[str, Any], prefix: str, limit: int) -> list[str]:
    """Every page of a listing, until there is no ``next``."""
    out: list[str] = []
    cursor: str | None = None
    for _ in range(len(table) + 2):  # bounded: each page but the last is full
        page, cursor = index.page(table, prefix, cursor, limit)
        assert len(page) <= limit
        out += page
        if cursor is None:
            return out
        assert page and cursor == page[-1]
    raise AssertionError("the listing did not end")


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_pages_list_exactly_the_live_names_in_order(ops: list[tuple[Any, ...]]) -> None:
    table: dict[str, Any] = {}
    index = QueueIndex()
    for op, *args in ops:
        if op == "create":
            table.setdefault(args[0], object())
        elif op == "delete":
            table.pop(args[0], None)
        elif op == "recreate":  # deleted and created again: a new queue at the end
            table.pop(args[0], None)
            table[args[0]] = object()
        else:
            prefix, limit = args
            expected = sorted(n for n in table if n.startswith(prefix))
            assert _walk(index, table, prefix, limit) == expected


def test_a_name_created_during_a_listing_shows_if_it_is_past_the_cursor() -> None:
    table: dict[str, Any] = {name: object() for name in ("a", "c", "e")}
    index = QueueIndex()
    page, cursor = index.page(table, "", None, 1)
    assert (page, cursor) == (["a"], "a")
    table["b"] = table["f"] = object()  # b sorts before the cursor's next, f after
    del table["c"]
    page, cursor = index.page(table, "", cursor, 2)
    assert (page, cursor) == (["b", "e"], "e")
    assert index.page(table, "", cursor, 2) == (["f"], None)


def test_a_cursor_outside_the_prefix_ends_or_starts_the_listing() -> None:
    table: dict[str, Any] = {name: object() for name in ("a1", "b1", "b2", "c1")}
    index = QueueIndex()
    assert index.page(table, "b", "a9", 10) == (["b1", "b2"], None)  # before: from the start
    assert index.page(table, "b", "zz", 10) == ([], None)  # after: nothing left
    assert index.page(table, "b", "b1", 10) == (["b2"], None)


def test_a_page_costs_what_changed_not_what_the_table_holds(monkeypatch: Any) -> None:
    """After the first page, a page reads only the table's new end: count what the
    index sorts, adds and reads of the table."""
    table: dict[str, Any] = {f"q{i:05}": object() for i in range(20_000)}
    index = QueueIndex()
    assert index.page(table, "", None, 3)[0] == ["q00000", "q00001", "q00002"]
    reads = 0

    class Counting(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            nonlocal reads
            reads += 1
            return super().__getitem__(key)

    counted = Counting(table)
    # a Counting copy is a new dict in the same order, with the same queue objects
    rebuilds: list[int] = []
    real = names_module.SortedNames

    def sorted_names(names: Any = ()) -> SortedNames:
        rebuilds.append(1)
        return real(names)

    monkeypatch.setattr(names_module, "SortedNames", sorted_names)
    for i in range(5):
        counted[f"new{i}"] = object()
    page, cursor = index.page(counted, "new", None, 2)
    assert (page, cursor) == (["new0", "new1"], "new1")
    assert rebuilds == [] and reads <= 6  # five new names, and the one that stops the walk


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
    table = {name: object() for name in names}  # queue objects: the index tells them by identity
    expected = QueueIndex().page(table, prefix, after, limit)
    assert names_module.page_of(sorted(names), prefix, after, limit) == expected
