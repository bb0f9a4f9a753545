"""Paged containers: a dict and a set that grow without one long pause.

Owns: keeping a container of any size growable in small steps. CPython grows a
dict or a set by rebuilding it whole, in one step: at a million entries that
is one stop of the event loop of 20-90 ms (more on a loaded machine: the new
table is ~100 MB of fresh pages), and deleting and adding entries at a steady
size rebuilds it from time to time too. ``PagedDict`` and ``PagedSet`` are a
plain dict or set while they hold at most ``SPLIT_AT`` entries, and pages past
that: sub-dicts (sub-sets) chosen by ``page_of(key)``, so no rebuild copies
more than one page. ``id_page`` pages by range of consecutive ids (each page
at most ``2**PAGE_BITS`` entries, filled one after the other as ids are
handed out, and dropped when it empties); ``hash_page`` by ``HASH_PAGES``
buckets of the key's hash (for keys whose hash is random, such as strings:
the buckets fill evenly, so they grow at different moments, never all in the
same call). Back under ``MERGE_AT`` entries they are one container again.

While small, ``get`` and ``pop`` (``add`` and ``discard`` of a set) are the
container's own bound methods: a lookup costs what a dict's does. They change
when it pages, so a caller looks them up on the container each time and never
keeps them across an insertion or a removal.

Must never: change what the container holds but by the operations asked (the
order of iteration is not kept), or import asyncio or read a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: a container pages once it holds more than this (one rebuild of it: ~1-2 ms)
SPLIT_AT: Final = 1 << 16
#: and is one container again once it holds fewer than this
MERGE_AT: Final = SPLIT_AT >> 3
PAGE_BITS: Final = 16  # an id page: 65536 consecutive ids
HASH_PAGES: Final = 64


def id_page(seq: int) -> int:
    """The page of an id (ids are handed out in order): its range of ``2**PAGE_BITS``."""
    return seq >> PAGE_BITS


def hash_page(key: Hashable) -> int:
    """The page of a key whose hash is random (a string): one of ``HASH_PAGES``."""
    return hash(key) & (HASH_PAGES - 1)


class PagedDict(Generic[K, V]):
    """A dict of ``K`` to ``V`` that pages past ``SPLIT_AT`` entries (module docstring).

    ``get(key)``, ``pop(key, default)`` and ``put(key, value)`` are its
    operations on one entry (``d[key]`` too, for a key that must be there),
    ``update(mapping)`` adds many; iterating gives the keys, ``values()`` the
    values, in no particular order. A value is never None (``get`` says None
    for a missing key)."""

    __slots__ = ("_n", "_one", "_page_of", "_pages", "get", "pop")

    get: Callable[[K], V | None]
    pop: Callable[[K, V | None], V | None]

    def __init__(self, page_of: Callable[[K], int]) -> None:
        self._page_of = page_of
        self._pages: dict[int, dict[K, V]] = {}
        self._n = 0  # entries while paged
        self._small({})

    def _small(self, one: dict[K, V]) -> None:
        self._one: dict[K, V] | None = one
        self._pages = {}
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
        page_no = self._page_of(key)
        page = self._pages.get(page_no)
        if page is None:
            page = self._pages[page_no] = {}
        n = len(page)
        page[key] = value
        self._n += len(page) - n

    def update(self, entries: Mapping[K, V]) -> None:
        one = self._one
        if one is None:
            for key, value in entries.items():
                self.put(key, value)
        else:
            one.update(entries)
            if len(one) > SPLIT_AT:
                self._split(one)

    def _split(self, one: dict[K, V]) -> None:
        self._one = None
        self._n = len(one)
        self.get = self._paged_get
        self.pop = self._paged_pop
        pages = self._pages
        page_of = self._page_of
        for key, value in one.items():
            page_no = page_of(key)
            page = pages.get(page_no)
            if page is None:
                page = pages[page_no] = {}
            page[key] = value

    def _paged_get(self, key: K) -> V | None:
        page = self._pages.get(self._page_of(key))
        return None if page is None else page.get(key)

    def _paged_pop(self, key: K, default: V | None) -> V | None:
        page_no = self._page_of(key)
        page = self._pages.get(page_no)
        if page is None or key not in page:
            return default
        value = page.pop(key)
        self._n -= 1
        if not page:
            del self._pages[page_no]
        if self._n < MERGE_AT:
            merged: dict[K, V] = {}
            for rest in self._pages.values():
                merged.update(rest)
            self._small(merged)
        return value

    def values(self) -> Iterable[V]:
        one = self._one
        if one is not None:
            return one.values()
        return chain.from_iterable([page.values() for page in self._pages.values()])

    def clear(self) -> None:
        self._small({})

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


class PagedSet(Generic[K]):
    """A set of ``K`` that pages past ``SPLIT_AT`` elements (module docstring).

    ``add(key)`` and ``discard(key)``; iterating gives the elements, in no
    particular order."""

    __slots__ = ("_n", "_one", "_page_of", "_pages", "add", "discard")

    add: Callable[[K], None]
    discard: Callable[[K], None]

    def __init__(self, page_of: Callable[[K], int]) -> None:
        self._page_of = page_of
        self._pages: dict[int, set[K]] = {}
        self._n = 0  # elements while paged
        self._small(set())

    def _small(self, one: set[K]) -> None:
        self._one: set[K] | None = one
        self._pages = {}
        self.add = self._small_add
        self.discard = one.discard

    def _small_add(self, key: K) -> None:
        one = self._one
        assert one is not None
        one.add(key)
        if len(one) > SPLIT_AT:
            self._split(one)

    def _split(self, one: set[K]) -> None:
        self._one = None
        self._n = len(one)
        self.add = self._paged_add
        self.discard = self._paged_discard
        pages = self._pages
        page_of = self._page_of
        for key in one:
            page_no = page_of(key)
            page = pages.get(page_no)
            if page is None:
                page = pages[page_no] = set()
            page.add(key)

    def _paged_add(self, key: K) -> None:
        page_no = self._page_of(key)
        page = self._pages.get(page_no)
        if page is None:
            page = self._pages[page_no] = set()
        n = len(page)
        page.add(key)
        self._n += len(page) - n

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
            self._small(set().union(*self._pages.values()))

    def clear(self) -> None:
        self._small(set())

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
