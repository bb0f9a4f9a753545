"""The tools extra's clear error, and ``peek()`` on both bundled clients."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from typing import Any

import pytest

import wonderq
from broker import tools
from broker.cli import top
from broker.server import Server


def test_missing_tools_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a)
    )
    with pytest.raises(tools.ToolsMissing, match=r"wonderq\[tools\]"):
        tools.require_tools("wonderq top", "rich")
    tools.require_tools("--metrics-port", "prometheus_client")  # that one is installed
    args = argparse.Namespace(host="127.0.0.1", port=1, interval=1.0)
    assert top.run(args) == 2
    err = capsys.readouterr().err
    assert "wonderq top needs the optional 'tools' extra (rich not installed)" in err
    assert "pip install 'wonderq[tools]'" in err


async def test_both_clients_peek_without_leasing(server: Server) -> None:
    async with await wonderq.connect("127.0.0.1", server.port) as client:
        ids = await client.put_many("jobs", [{"n": 1}, wonderq.Envelope("b", key="k")])
        (held,) = await client.get("jobs", lease=60)
        result = await client.peek("jobs")
        assert result.total == 2 and [m.id for m in result.messages] == ids
        first, second = result.messages
        assert first.state == wonderq.MessageState.LEASED and first.holder is not None
        assert first.lease_left is not None and 59 < first.lease_left <= 60
        assert second.key == "k" and second.body == "b" and second.holder is None
        ready = await client.peek("jobs", state="ready", limit=1)
        assert [m.id for m in ready.messages] == [ids[1]]
        await held.ack()

        def blocking() -> Any:
            with wonderq.connect_sync("127.0.0.1", server.port) as sync:
                return sync.peek("jobs", state="ready")

        async with asyncio.timeout(10):
            same = await asyncio.to_thread(blocking)
        assert [m.id for m in same.messages] == [ids[1]] and same.messages[0].attempts == 0
        with pytest.raises(wonderq.NotFound):
            await client.peek("nope")
