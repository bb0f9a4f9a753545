"""Paged containers: a dict and a set that grow without one long pause.

Owns: keeping a container of any size growable in small steps. CPython grows a
dict or a set by rebuilding it whole, in one step: at a million entries that
is one stop of the event loop of 20-90 ms (more on a loaded machine: the new
table is ~100 MB of fresh pages), and deleting and adding entries at a steady
size rebuilds it from time to time too. ``PagedDict`` and ``PagedSet`` are a
plain dict or set while they hold at most ``SPLIT_AT`` entries, and pages past
that: sub-dicts (sub-sets) chosen by the key, so no rebuild copies more than
one page. Ids page by range (``id_page``: each page at most ``2**PAGE_BITS``
consecutive ids, filled one after the other as ids are handed out, and
dropped when it empties); other keys by ``HASH_PAGES`` buckets of their hash
(for keys whose hash is random, such as strings: the buckets fill evenly, so
they grow at different moments, never all in the same call; a ``PagedSet``
is told its elements' page, e.g. the range of a message's id). Back under
``MERGE_AT`` entries they are one container again.

While small, ``get`` and ``pop`` (``discard`` of a set) are the container's
own bound methods: a lookup costs what a dict's does. They change
when it pages, so a caller looks them up on the container each time and never
keeps them across an insertion or a removal.

Must never: change what the container holds but by the operations asked (the
order of iteration is not kept), or import asyncio or read a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
C = TypeVar("C", bound=Collection[Any])  # the container: a dict[K, V] or a set[K]

#: a container pages once it holds more than this (one rebuild of it: ~1-2 ms)
SPLIT_AT: Final = 1 << 16
#: and is one container again once it holds fewer than this
MERGE_AT: Final = SPLIT_AT >> 3
PAGE_BITS: Final = 16  # an id page: 65536 consecutive ids
HASH_PAGES: Final = 64


def id_page(seq: int) -> int:
    """The page of an id (ids are handed out in order): its range of ``2**PAGE_BITS``."""
    return seq >> PAGE_BITS


class _Paged(Generic[K, C]):
    """What ``PagedDict`` and ``PagedSet`` share: their keys, their size, their mode."""

    __slots__ = ("_n", "_one", "_pages")

    _one: C | None  # the one container while small, None while paged
    _pages: dict[int, C]  # while paged (unset while small: a queue has two)
    _n: int  # how many while paged

    def __iter__(self) -> Iterator[K]:
        one = self._one
        if one is not None:
            return iter(one)
        return chain.from_iterable(list(self._pages.values()))

    def __len__(self) -> int:
        one = self._one
        return self._n if one is None else len(one)

    @property
    def paged(self) -> bool:
        """Whether it is in pages now (for tests and benches)."""
        return self._one is None


class PagedDict(_Paged[K, dict[K, V]], Generic[K, V]):
    """A dict of ``K`` to ``V`` that pages past ``SPLIT_AT`` entries (module docstring):
    by id range (``PagedDict(by_id=True)``: int keys handed out in order) or by hash.

    ``get(key)``, ``pop(key, default)`` and ``put(key, value)`` are its
    operations on one entry (``d[key]`` too, for a key that must be there),
    ``update(mapping)`` adds many; iterating gives the keys, ``values()`` the
    values, in no particular order. A value is never None (``get`` says None
    for a missing key)."""

    __slots__ = ("_mask", "_shift", "get", "pop")

    get: Callable[[K], V | None]
    pop: Callable[[K, V | None], V | None]

    def __init__(self, by_id: bool) -> None:
        # the page of a key: hash(key) >> shift & mask (an int's hash is itself: its range)
        self._shift = PAGE_BITS if by_id else 0
        self._mask = -1 if by_id else HASH_PAGES - 1
        self._n = 0  # entries while paged
        self._small({})

    def _small(self, one: dict[K, V]) -> None:
        self._one = one
        self.get = one.get
        self.pop = one.pop

    def __getitem__(self, key: K) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def put(self, key: K, value: V) -> None:
        one = self._one
        if one is not None:
            one[key] = value
            if len(one) > SPLIT_AT:
                self._split(one)
            return
        page_no = hash(key) >> self._shift & self._mask
        page = self._pages.get(page_no)
        if page is None:
            page = self._pages[page_no] = {}
        n = len(page)
        page[key] = value
        self._n += len(page) - n

    def update(self, entries: Mapping[K, V]) -> None:
        one = self._one
        if one is not None:
            one.update(entries)
            if len(one) > SPLIT_AT:
                self._split(one)
        else:
            self._add_paged(entries.items())

    def _split(self, one: dict[K, V]) -> None:
        self._one = None
        self._pages = {}
        self._n = 0
        self.get = self._paged_get
        self.pop = self._paged_pop
        self._add_paged(one.items())

    def _add_paged(self, entries: Iterable[tuple[K, V]]) -> None:
        pages, shift, mask = self._pages, self._shift, self._mask
        last_no = None
        page: dict[K, V] = {}
        n = self._n
        for key, value in entries:
            page_no = hash(key) >> shift & mask
            if page_no != last_no:  # (ids in a row share a page)
                n += len(page)
                page = pages.get(page_no) or pages.setdefault(page_no, {})
                n -= len(page)
                last_no = page_no
            page[key] = value
        self._n = n + len(page)

    def _paged_get(self, key: K) -> V | None:
        page = self._pages.get(hash(key) >> self._shift & self._mask)
        return None if page is None else page.get(key)

    def _paged_pop(self, key: K, default: V | None) -> V | None:
        page_no = hash(key) >> self._shift & self._mask
        page = self._pages.get(page_no)
        value = None if page is None else page.pop(key, None)
        if value is None:
            return default
        self._n -= 1
        if not page:
            del self._pages[page_no]
        if self._n < MERGE_AT:
            merged: dict[K, V] = {}
            for rest in self._pages.values():
                merged.update(rest)
            self._pages = {}
            self._small(merged)
        return value

    def values(self) -> Iterable[V]:
        one = self._one
        if one is not None:
            return one.values()
        return chain.from_iterable([page.values() for page in self._pages.values()])

    def clear(self) -> None:
        self._pages = {}
        self._small({})


class PagedSet(_Paged[K, set[K]]):
    """A set of ``K`` that pages past ``SPLIT_AT`` elements (module docstring).

    ``add(key)`` and ``discard(key)``; iterating gives the elements, in no
    particular order."""

    __slots__ = ("_page_of", "discard")

    discard: Callable[[K], None]

    def __init__(self, page_of: Callable[[K], int]) -> None:
        self._page_of = page_of
        self._n = 0  # elements while paged
        self._small(set())

    def _small(self, one: set[K]) -> None:
        self._one = one
        self.discard = one.discard

    def add(self, key: K) -> None:
        one = self._one
        if one is not None:
            one.add(key)
            if len(one) > SPLIT_AT:
                self._split(one)
            return
        page_no = self._page_of(key)
        page = self._pages.get(page_no)
        if page is None:
            page = self._pages[page_no] = set()
        n = len(page)
        page.add(key)
        self._n += len(page) - n

    def _split(self, one: set[K]) -> None:
        self._one = None
        self._pages = {}
        self._n = len(one)
        self.discard = self._paged_discard
        pages = self._pages
        page_of = self._page_of
        for key in one:
            page_no = page_of(key)
            page = pages.get(page_no)
            if page is None:
                page = pages[page_no] = set()
            page.add(key)

    def _paged_discard(self, key: K) -> None:
        page_no = self._page_of(key)
        page = self._pages.get(page_no)
        if page is None or key not in page:
            return
        page.remove(key)
        self._n -= 1
        if not page:
            del self._pages[page_no]
        if self._n < MERGE_AT:
            merged = set().union(*self._pages.values())
            self._pages = {}
            self._small(merged)

    def clear(self) -> None:
        self._pages = {}
        self._small(set())
