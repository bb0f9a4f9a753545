"""BrokerProcess: ready when it says where it listens, and never left running."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support import BrokerProcess, LineClient
from tests.support import broker as broker_module


def gone(pid: int) -> bool:
    """True once ``pid`` is no process of ours (it was waited for)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_broker_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    async with await BrokerProcess.start_with(tmp_path / "b.log", "--log-level", "info") as b:
        async with await LineClient.connect(b.port) as c:
            assert await c.call(op="PING") == {"ok": True}
        assert await b.stop() == 0
    assert "listening on" in await b.stderr()  # the log line, next to the stdout one
    assert gone(b.pid)


async def test_the_block_stops_the_broker_when_the_test_fails(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        async with await BrokerProcess.start_with(tmp_path / "b.log") as b:
            assert b.running
            _ = 1 / 0
    assert b.proc.returncode == 0  # stopped with SIGTERM, gracefully
    assert gone(b.pid)


async def test_a_broker_that_does_not_start_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"(?s)broker did not start.*lease"):
        await BrokerProcess.start_with(tmp_path / "b.log", "--lease", "-1")


async def test_kill_is_sigkill(tmp_path: Path) -> None:
    async with await BrokerProcess.start_with(tmp_path / "b.log") as b:
        await b.kill()
        assert b.proc.returncode == -signal.SIGKILL


async def test_a_broker_that_does_not_stop_in_time_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_module, "STOP_TIMEOUT_S", 0.5)
    b = await BrokerProcess.start_with(tmp_path / "b.log")
    os.kill(b.pid, signal.SIGSTOP)  # a hung broker: SIGTERM stays pending
    with pytest.raises(AssertionError, match=r"still running after 0\.5 s"):
        await b.stop()
    assert b.proc.returncode == -signal.SIGKILL
    assert gone(b.pid)
