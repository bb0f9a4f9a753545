"""``wonderq top`` end to end: a real broker, a real 80x24 terminal (tmux), a restart, and q."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support import BrokerProcess, LineClient, require_tool
from tests.support import run as run_process

WAIT_S = 15.0


async def run(*argv: str) -> str:
    _, out, _ = await run_process(*argv, timeout_s=WAIT_S)
    return out


class Terminal:
    """One tmux session of 80x24 on a private tmux server."""

    def __init__(self) -> None:
        self.socket = f"wonderq-test-{os.getpid()}"
        self.tmux = (require_tool("tmux"), "-L", self.socket)

    async def start(self, command: str) -> None:
        await run(*self.tmux, "new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)

    async def screen(self) -> str:
        return await run(*self.tmux, "capture-pane", "-p", "-t", "top")

    async def until(self, ok: Callable[[str], bool], what: str) -> str:
        """Poll the pane (a terminal has no event to await) until ``ok``, for at most WAIT_S."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + WAIT_S
        screen = ""
        while loop.time() < give_up_at:
            screen = await self.screen()
            if ok(screen):
                return screen
            await asyncio.sleep(0.1)  # real time: a terminal pane has no event to await
        raise AssertionError(f"the dashboard never showed {what}; last screen:\n{screen}")

    async def close(self) -> None:
        await run(*self.tmux, "kill-server")


def cells(screen: str, queue: str) -> list[str]:
    for line in screen.splitlines():
        if line.startswith(queue + " "):
            return line.split()
    return []


async def test_top_shows_stats_survives_a_restart_and_quits_on_q(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    args = ("--log-level", "warning", "--no-http")  # the restart reuses the TCP port only
    term = Terminal()
    try:
        async with await BrokerProcess.start_with(log, *args) as broker:
            port = broker.port
            await term.start(
                f"{sys.executable} -m broker top --port {port} --interval 0.2; sleep 30"
            )
            async with await LineClient.connect(port) as c:
                await c.call(op="PUT", queue="jobs", messages=[{"body": i} for i in range(5)])
                await c.call(op="PUT", queue="jobs", body="later", delay=600)
                await c.call(op="GET", queue="jobs", max=2, lease=600)
                stats = (await c.call(op="STATS"))["queues"]["jobs"]
                screen = await term.until(lambda s: cells(s, "jobs")[1:2] == ["3"], "3 ready")
                assert cells(screen, "jobs")[:6] == [
                    "jobs",
                    str(stats["ready"]),
                    str(stats["delayed"]),
                    str(stats["leased"]),
                    str(stats["dead"]),
                    str(stats["waiting_consumers"]),
                ]
                assert "connected" in screen and "conns 2" in screen
                assert all(len(line) <= 80 for line in screen.splitlines())
        await term.until(lambda s: "DISCONNECTED" in s, "DISCONNECTED")
        async with await BrokerProcess.start_with(log, *args, port=port) as again:
            assert again.port == port
            async with await LineClient.connect(port) as c:
                await c.call(op="PUT", queue="mail", body="hi")
                screen = await term.until(
                    lambda s: "restarted 1x" in s and cells(s, "mail")[1:2] == ["1"],
                    "the restarted broker",
                )
            assert cells(screen, "jobs") == []  # gone with the old (in-memory) process
            await run(*term.tmux, "send-keys", "-t", "top", "q")
            # top exits at once; the shell then sleeps, so the pane is still there to read
            await term.until(lambda s: "WonderQ" not in s, "top exiting on q")
    finally:
        await term.close()
