"""PagedDict and PagedSet (broker/engine/paged.py) against a plain dict and set.

Random operations with the page sizes shrunk (``tiny_pages``), so that a few
entries make them page and merge again, and the real sizes once: a container
of 200k ids pages, no page over ``2**PAGE_BITS``, and is one dict again once
nearly empty.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.engine import State, paged
from broker.engine.paged import (
    MERGE_AT,
    PAGE_BITS,
    SPLIT_AT,
    PagedDict,
    PagedSet,
    id_page,
)
from tests.engine.helpers import drain_bodies, get, make_engine, new, put, stats, tiny_pages

INT_KEYS = st.integers(1000, 1040)
STR_KEYS = st.sampled_from([f"k{i}" for i in range(30)])


def dict_ops(keys: st.SearchStrategy[Hashable]) -> st.SearchStrategy[list[tuple[object, ...]]]:
    return st.lists(
        st.one_of(
            st.tuples(st.just("put"), keys, st.integers()),
            st.tuples(st.just("pop"), keys),
            st.tuples(st.just("get"), keys),
            st.tuples(st.just("item"), keys),
            st.tuples(st.just("update"), st.dictionaries(keys, st.integers(), max_size=8)),
            st.tuples(st.just("clear")),
        ),
        max_size=120,
    )


def run_dict(by_id: bool, ops: list[tuple[object, ...]]) -> set[bool]:
    """Apply ``ops`` to a PagedDict and a dict, comparing after each; the modes seen."""
    d: PagedDict[Hashable, int] = PagedDict(by_id)
    model: dict[Hashable, int] = {}
    modes = set()
    for op, *args in ops:
        if op == "put":
            d.put(args[0], args[1])  # type: ignore[arg-type]
            model[args[0]] = args[1]  # type: ignore[assignment]
        elif op == "pop":
            assert d.pop(args[0], None) == model.pop(args[0], None)
        elif op == "get":
            assert d.get(args[0]) == model.get(args[0])
        elif op == "item":
            if args[0] in model:
                assert d[args[0]] == model[args[0]]
            else:
                with pytest.raises(KeyError):
                    d[args[0]]
        elif op == "update":
            d.update(args[0])  # type: ignore[arg-type]
            model.update(args[0])  # type: ignore[call-overload]
        else:
            d.clear()
            model.clear()
        modes.add(d.paged)
        assert len(d) == len(model)
        assert sorted(d, key=repr) == sorted(model, key=repr)
        assert sorted(d.values()) == sorted(model.values())
    return modes


@given(dict_ops(INT_KEYS))
def test_paged_dict_of_ids_does_what_a_dict_does(ops: list[tuple[object, ...]]) -> None:
    with tiny_pages():
        run_dict(True, ops)


@given(dict_ops(STR_KEYS))
def test_paged_dict_of_strings_does_what_a_dict_does(ops: list[tuple[object, ...]]) -> None:
    with tiny_pages():
        run_dict(False, ops)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), INT_KEYS),
            st.tuples(st.just("discard"), INT_KEYS),
            st.tuples(st.just("clear"), st.just(0)),
        ),
        max_size=120,
    )
)
def test_paged_set_does_what_a_set_does(ops: list[tuple[str, int]]) -> None:
    with tiny_pages():
        s: PagedSet[int] = PagedSet(id_page)
        model: set[int] = set()
        for op, key in ops:
            if op == "add":
                s.add(key)
                model.add(key)
            elif op == "discard":
                s.discard(key)
                model.discard(key)
            else:
                s.clear()
                model.clear()
            assert len(s) == len(model)
            assert set(s) == model
            assert sorted(s) == sorted(model)  # each once


def test_tiny_pages_are_paged_and_merged() -> None:
    """The random runs above go through both modes (a check on the test)."""
    ops: list[tuple[object, ...]] = [("put", k, k) for k in range(1000, 1010)]
    ops += [("pop", k) for k in range(1000, 1010)]
    with tiny_pages():
        assert run_dict(True, ops) == {False, True}


def test_a_dict_of_many_ids_pages_and_is_one_dict_again_once_nearly_empty() -> None:
    first = 1_733_380_000_000_000  # ids start at the wall clock in microseconds
    n = 3 * SPLIT_AT + 5
    d: PagedDict[int, int] = PagedDict(by_id=True)
    for seq in range(first, first + n):
        d.put(seq, seq)
    assert d.paged and len(d) == n
    pages = d._pages
    assert max(map(len, pages.values())) <= 1 << PAGE_BITS
    assert len(pages) == len({id_page(s) for s in range(first, first + n)}) <= 5
    for seq in range(first, first + n - MERGE_AT):
        assert d.pop(seq, None) == seq
    assert d.paged and len(d) == MERGE_AT  # not yet
    left = range(first + n - MERGE_AT, first + n)
    assert sorted(pages) == sorted({id_page(s) for s in left})  # the emptied ones went
    d.pop(first + n - 1, None)
    assert not d.paged and len(d) == MERGE_AT - 1
    assert sorted(d) == list(range(first + n - MERGE_AT, first + n - 1))
    assert d.get(first) is None and d.get(first + n - 2) == first + n - 2


def test_a_set_of_many_messages_pages_by_their_ids() -> None:
    s: PagedSet[int] = PagedSet(id_page)
    for seq in range(SPLIT_AT + 1):
        s.add(seq)
    assert s.paged and len(s) == SPLIT_AT + 1
    assert max(map(len, s._pages.values())) <= 1 << PAGE_BITS
    for seq in range(SPLIT_AT + 1):
        s.discard(seq)
        s.discard(seq)  # twice: nothing
    assert not s.paged and len(s) == 0 and list(s) == []


def test_keys_by_hash_fill_the_pages_evenly() -> None:
    """Strings' hashes are random: no hash page takes much more than its share."""
    d: PagedDict[str, int] = PagedDict(by_id=False)
    for i in range(2 * SPLIT_AT):
        d.put(f"key-{i}", i)
    sizes = [len(p) for p in d._pages.values()]
    assert len(sizes) == paged.HASH_PAGES
    assert max(sizes) < 1.2 * (2 * SPLIT_AT / paged.HASH_PAGES)


def keyed_delayed_run() -> list[object]:
    """An engine's story with keyed, delayed and plain messages (held by the paged id
    index, key chains and delayed sets); what it answered at each step."""
    e = make_engine(max_attempts=2)
    seen: list[object] = []
    items = [new(f"m{i}", key=f"k{i % 7}", delay_s=float(i % 3)) for i in range(40)]
    seen.append(put(e, "q", *items, *[f"p{i}" for i in range(10)]))
    seen.append(len(e.peek("q", State.DELAYED, 100)))
    for now in (0.0, 1.0, 2.0):
        e.advance(now)
        msgs = get(e, "q", "A", max=12, now=now)
        seen.append([m.body for m in msgs])
        seen.append(e.ack_many(now, "B", [m.seq for m in msgs] + [5]))  # not B's: they stay
        seen.append(e.ack_many(now, "A", [m.seq for m in msgs[::2]]))
        for m in msgs[1::2]:
            e.nack(now, "A", m.seq)
        seen.append(stats(e, "q"))
    seen.append(e.remove(3.0, "q", [m.seq for m in e.peek("q", None, 6)][::2]))
    seen.append(drain_bodies(e, "q", now=3.0))
    seen.append((len(e.live_seqs()), stats(e, "q")))
    return seen


def test_the_engine_answers_the_same_with_tiny_pages() -> None:
    plain = keyed_delayed_run()
    with tiny_pages():
        assert keyed_delayed_run() == plain
