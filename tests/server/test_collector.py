"""The serve command's collector policy: paused while starting, startup state frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from broker.cli import serve as serve_cmd
from broker.config import Config
from broker.server import Server, collector
from tests.conftest import one_backend

#: the collector is the process's, and its one Server is built in memory here
pytestmark = one_backend


@pytest.fixture
def restore_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.callbacks[:] = callbacks
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_disables_and_restores(restore_gc: None) -> None:
    gc.enable()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_paused_keeps_a_disabled_collector_disabled(restore_gc: None) -> None:
    gc.disable()
    with collector.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_paused_restores_after_an_error(restore_gc: None) -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("replay failed")
    assert gc.isenabled()


class _Node:
    """A tracked object that can sit in a reference cycle (and be weakly referenced)."""

    peer: object = None


def test_freeze_survivors_collects_then_freezes_everything_alive(restore_gc: None) -> None:
    gc.unfreeze()  # nothing frozen before
    held = [object()]  # a tracked container alive at the freeze
    garbage = _Node()
    garbage.peer = garbage  # a cycle: only the cyclic collector frees it
    gone = weakref.ref(garbage)
    del garbage
    frozen = collector.freeze_survivors()
    assert gone() is None  # collected first: garbage is never frozen
    assert not any(o is held for o in gc.get_objects())  # alive: frozen, out of the collections
    not_frozen = len(gc.get_objects())
    gc.unfreeze()
    assert len(gc.get_objects()) == not_frozen + frozen > not_frozen  # it returns how many froze
    assert any(o is held for o in gc.get_objects())


def test_space_young_collections_raises_only_the_young_threshold(restore_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    collector.space_young_collections()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    assert collector.YOUNG_THRESHOLD > 700


async def test_serve_starts_with_the_collector_paused_then_freezes(
    monkeypatch: pytest.MonkeyPatch, restore_gc: None
) -> None:
    gc.enable()
    seen: list[str] = []

    class Probe(Server):
        async def start(self) -> None:
            seen.append("start, collector " + ("on" if gc.isenabled() else "off"))
            await super().start()
            self.request_stop()  # serve() returns once the server is up

    def freeze() -> int:
        seen.append("freeze, collector " + ("on" if gc.isenabled() else "off"))
        return 0  # the test process itself is not frozen

    def space() -> None:
        seen.append("space young collections")

    monkeypatch.setattr(serve_cmd, "Server", Probe)
    monkeypatch.setattr(collector, "freeze_survivors", freeze)
    monkeypatch.setattr(collector, "space_young_collections", space)
    await serve_cmd.serve(Config(host="127.0.0.1", port=0))
    assert seen == ["start, collector off", "freeze, collector on", "space young collections"]


def test_a_slow_full_collection_freezes_its_survivors_and_a_quick_one_does_not(
    restore_gc: None,
) -> None:
    gc.unfreeze()
    later: list[object] = []
    quick = collector.freeze_after_slow_collections(later.append, after_s=3600.0)
    gc.collect()
    assert quick.freezes == 0 and gc.get_freeze_count() == 0
    gc.callbacks.remove(quick)
    slow = collector.freeze_after_slow_collections(later.append, after_s=0.0)  # all "slow"
    held = [_Node() for _ in range(100)]
    garbage = _Node()
    garbage.peer = garbage
    dead = weakref.ref(garbage)
    del garbage
    gc.collect(1)  # not a full collection: nothing frozen
    assert slow.freezes == 0
    gc.collect()
    assert slow.freezes == 1 and dead() is None  # collected first, then the rest frozen
    assert later == [gc.collect]  # and one more full collection asked for, a moment later
    assert gc.get_freeze_count() >= len(held)
    assert not any(n is held[0] for n in gc.get_objects(generation=2))  # out of gen 2
