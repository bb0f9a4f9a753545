"""The serve command's collector policy: paused while starting, startup state frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from broker.cli import serve as serve_cmd
from broker.config import Config
from broker.server import Server, collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
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


def test_freeze_survivors_moves_live_objects_out_of_collections(restore_gc: None) -> None:
    held = [object()]  # a tracked container alive at the freeze
    frozen = collector.freeze_survivors()
    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is held for o in gc.get_objects())
    gc.unfreeze()
    assert any(o is held for o in gc.get_objects())


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

    monkeypatch.setattr(serve_cmd, "Server", Probe)
    monkeypatch.setattr(collector, "freeze_survivors", freeze)
    await serve_cmd.serve(Config(host="127.0.0.1", port=0))
    assert seen == ["start, collector off", "freeze, collector on"]
