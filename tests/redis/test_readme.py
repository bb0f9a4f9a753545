"""README's "Scale out" commands work when pasted: both blocks run in bash, as written,
on free loopback ports (one Redis and three nodes; a 3+3 Redis Cluster and three
nodes), and every process they leave running in the background is stopped by PID.

Only the machine set-up lines (``sudo apt-get install``, ``pip install``) are left
out: this machine has both. The ports of the text are replaced by free ones (a
cluster server's bus port, its port + 10000, must be free too).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.redis.servers import require_redis_cli

ROOT = Path(__file__).resolve().parents[2]
SETUP = ("sudo apt-get install -y redis-server", "pip install 'wonderq[redis]'")
RUN_S = 60.0
STOP_S = 10.0


def blocks() -> list[str]:
    """The two shell blocks of the Scale out section (wherever it lives)."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        match = re.search(r"^##? Scale out.*?\n(.*?)(?=^## )", text, re.M | re.S)
        if match:
            found = re.findall(r"^```\n(.*?)^```", match.group(1), re.M | re.S)
            assert len(found) >= 2, "Scale out lost its two command blocks"
            return found[:2]
    raise AssertionError("no 'Scale out' section in README.md or docs/")


def shifted(block: str, ports: dict[int, tuple[int, ...]]) -> str:
    """``block`` with every port moved by one delta that leaves each free, with the
    neighbours it needs (``ports``: port -> the offsets it also takes: a node's HTTP
    API on +1, a cluster server's bus on +10000), so the text's spacing is kept."""
    for delta in range(13000, 43000, 97):  # bounded scan
        if all(_free(p + delta + off) for p, offs in ports.items() for off in (0, *offs)):
            for p in sorted(ports, reverse=True):
                block = re.sub(rf"\b{p}\b", str(p + delta), block)
            return block
    raise AssertionError("no free ports for the README's commands")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def run_block(script: str, cwd: Path) -> str:
    """Run ``script`` in bash (``set -e``); its output, once every background process it
    started is stopped by PID."""
    for line in SETUP:
        script = script.replace(line + "\n", "")
    out = cwd / "out.txt"
    pids = cwd / "pids.txt"
    wrapped = f"set -e\ntrap 'jobs -p > {pids}' EXIT\n{script}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", wrapped, cwd=cwd, env=env, stdout=sink, stderr=sink
        )
        try:
            async with asyncio.timeout(RUN_S):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.to_thread(stop_all, pids)
    text = await asyncio.to_thread(out.read_text)
    assert code == 0, text[-3000:]
    return text


def stop_all(pids: Path) -> None:
    """SIGTERM every PID in ``pids``, then SIGKILL what still runs after ``STOP_S``."""
    running = [int(p) for p in pids.read_text().split()] if pids.exists() else []
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    for pid in running:
        for _ in range(int(STOP_S / 0.05)):  # bounded; they are not our children: polled
            if not _alive(pid) or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # real time: processes not our children, polled
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    return True


def check_output(text: str) -> None:
    assert '"task":"resize"' in text.replace(" ", ""), text[-3000:]
    assert re.search(r"jobs\s.*\b1\b", text), text[-3000:]  # the stats row: 1 acked


@pytest.mark.timeout(90)
async def test_the_single_redis_commands_work_when_pasted(tmp_path: Path) -> None:
    require_redis_cli()
    ports = {6390: (), 7001: (1,), 7011: (1,), 7021: (1,)}
    assert all(line in blocks()[0] for line in SETUP)  # a fresh machine's set-up is shown
    check_output(await run_block(shifted(blocks()[0], ports), tmp_path))


@pytest.mark.timeout(120)
async def test_the_cluster_commands_work_when_pasted(tmp_path: Path) -> None:
    require_redis_cli()
    ports: dict[int, tuple[int, ...]] = {p: (10000,) for p in range(7101, 7107)}
    ports.update({7201: (1,), 7211: (1,), 7221: (1,)})
    check_output(await run_block(shifted(blocks()[1], ports), tmp_path))
