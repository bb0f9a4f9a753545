"""The snippets of clients/python/README.md work when pasted: each runs as a script against a real broker."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

import wonderq
from tests.support import run_python, started

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
T = 15.0


def snippet(section: str) -> str:
    """The first ```python block under the heading ``## <section>``, with the real port."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)^```python\n(.*?)^```", text, re.M | re.S)
    assert match is not None, f"no python block under '## {section}'"
    return match.group(2)


def on_port(code: str, port: int) -> str:
    assert code.count("7878") == 1
    return code.replace("7878", str(port))


async def run_script(script: str, cwd: Path) -> str:
    code, out, err = await run_python("-c", script, cwd=cwd, timeout_s=T)
    assert code == 0, (out, err)
    return out


def test_the_snippets_are_short() -> None:
    for section in ("Producer", "Consumer", "Blocking worker"):
        lines = [line for line in snippet(section).splitlines() if line.strip()]
        assert len(lines) <= 10, section


def script(code: str, cwd: Path) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """A script running as a process (killed on the way out if it is still running)."""
    return started(sys.executable, "-c", code, cwd=cwd)


async def stop_cleanly(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """Send ``sig``; the script must exit with code 0 and print no traceback."""
    proc.send_signal(sig)
    async with asyncio.timeout(T):
        _, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err, err


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_producer_and_consumer_snippets_work_when_pasted(
    broker: Any, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    out = await run_script(on_port(snippet("Producer"), broker.port), tmp_path)
    assert out == "queued 11 jobs\n"

    async with script(on_port(snippet("Consumer"), broker.port), tmp_path) as consumer:
        assert consumer.stdout is not None
        handled: list[str] = []
        async with asyncio.timeout(T):
            while len(handled) < 11:  # bounded by the 11 jobs and the timeout
                line = await consumer.stdout.readline()
                assert line, "the consumer exited early"
                handled.append(line.decode().strip())
        await stop_cleanly(consumer, stop_signal)
    assert sorted(handled) == sorted(
        ["resizing image 42"] + [f"resizing image {n}" for n in range(10)]
    )
    async with await wonderq.connect("127.0.0.1", broker.port) as client:
        jobs = (await client.stats("jobs")).queues["jobs"]
    assert (jobs.acked, jobs.ready, jobs.leased) == (11, 0, 0)


async def test_blocking_client_snippet_works_when_pasted(broker: Any, tmp_path: Path) -> None:
    out = await run_script(on_port(snippet("Blocking client, for scripts"), broker.port), tmp_path)
    assert out == "sending to ada@example.com\n"
    async with await wonderq.connect("127.0.0.1", broker.port) as client:
        assert (await client.stats("emails")).queues["emails"].acked == 1


async def test_blocking_worker_snippet_works_when_pasted(broker: Any, tmp_path: Path) -> None:
    async with (
        script(on_port(snippet("Blocking worker"), broker.port), tmp_path) as worker,
        await wonderq.connect("127.0.0.1", broker.port) as client,
    ):
        assert worker.stdout is not None
        await client.put("emails", {"to": "ada@example.com"})
        async with asyncio.timeout(T):
            assert await worker.stdout.readline() == b"sending to ada@example.com\n"
        await stop_cleanly(worker, signal.SIGINT)  # Ctrl-C
        emails = (await client.stats("emails")).queues["emails"]
    assert (emails.acked, emails.ready, emails.leased) == (1, 0, 0)


@pytest.mark.parametrize(
    "section", ["Producer", "Consumer", "Blocking client, for scripts", "Blocking worker"]
)
def test_snippets_use_only_the_public_api(section: str) -> None:
    names = set(re.findall(r"wonderq\.(\w+)", snippet(section)))
    assert names <= set(wonderq.__all__), names - set(wonderq.__all__)
