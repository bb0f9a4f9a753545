"""`wonderq demo`: the whole narrated scenario runs, every step checks out, failures are reported."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import wonderq
from broker.cli import demo, main


def test_the_whole_demo_runs_and_every_step_checks_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--fast", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert out.count("[ok]") == demo.STEPS
    for number in range(1, demo.STEPS + 1):
        assert f"\n{number}. " in out
    assert "refused, not_leased" in out
    assert "attempt 3: ValueError" in out and ".poison.dead" in out
    total = re.search(r"total\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert total is not None
    expected, without_key, with_key = map(int, total.groups())
    assert with_key == expected and without_key < expected
    final = out.split("Final STATS")[1]
    for queue in ("jobs", "crash", "stall", "poison", "poison.dead", "counters-keyed"):
        assert re.search(rf"demo-\w+\.{re.escape(queue)}\s+\d", final), queue
    assert "All 5 steps behaved as promised" in out


async def test_the_demo_runs_against_a_broker_given_by_host_and_port(broker: Any) -> None:
    argv = ["demo", "--fast", "--host", "127.0.0.1", "--port", str(broker.port)]
    async with asyncio.timeout(30):
        assert await asyncio.to_thread(main, argv) == 0
    async with await wonderq.connect("127.0.0.1", broker.port) as client:
        stats = await client.stats()
    assert stats.server.connections == 1  # this one: the demo closed every connection it opened
    assert stats.server.leased == 0 and stats.server.messages == 0


def test_a_step_that_does_not_check_out_fails_the_demo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: demo.Demo) -> None:
        demo.check(False, "the broker broke a promise")

    monkeypatch.setattr(demo.Demo, "stall", broken)
    assert main(["demo", "--fast"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: the broker broke a promise" in out
    assert "4. A poison message" not in out


def test_check_raises_only_when_the_outcome_is_wrong() -> None:
    demo.check(True, "fine")
    with pytest.raises(demo.DemoFailed, match="wrong"):
        demo.check(False, "wrong")
