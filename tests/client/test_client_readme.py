"""The snippets of clients/python/README.md work when pasted: each runs as a script against a real broker."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import wonderq

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


async def run_script(code: str, cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=cwd, stdout=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(T):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, out
    return out.decode()


def test_the_snippets_are_short() -> None:
    for section in ("Producer", "Consumer", "Blocking worker"):
        lines = [line for line in snippet(section).splitlines() if line.strip()]
        assert len(lines) <= 10, section


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_producer_and_consumer_snippets_work_when_pasted(
    broker: Any, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    out = await run_script(on_port(snippet("Producer"), broker.port), tmp_path)
    assert out == "queued 11 jobs\n"

    consumer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        on_port(snippet("Consumer"), broker.port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert consumer.stdout is not None
    try:
        handled = []
        async with asyncio.timeout(T):
            while len(handled) < 11:  # bounded by the 11 jobs and the timeout
                line = await consumer.stdout.readline()
                assert line, "the consumer exited early"
                handled.append(line.decode().strip())
            consumer.send_signal(stop_signal)  # a clean stop: exit code 0, no traceback
            _, err = await consumer.communicate()
        assert consumer.returncode == 0, err
        assert b"Traceback" not in err, err
    finally:
        if consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
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
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        on_port(snippet("Blocking worker"), broker.port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert worker.stdout is not None
    try:
        async with await wonderq.connect("127.0.0.1", broker.port) as client:
            await client.put("emails", {"to": "ada@example.com"})
            async with asyncio.timeout(T):
                assert await worker.stdout.readline() == b"sending to ada@example.com\n"
                worker.send_signal(signal.SIGINT)  # Ctrl-C
                _, err = await worker.communicate()
            assert worker.returncode == 0, err
            assert b"Traceback" not in err, err
            emails = (await client.stats("emails")).queues["emails"]
        assert (emails.acked, emails.ready, emails.leased) == (1, 0, 0)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


@pytest.mark.parametrize(
    "section", ["Producer", "Consumer", "Blocking client, for scripts", "Blocking worker"]
)
def test_snippets_use_only_the_public_api(section: str) -> None:
    names = set(re.findall(r"wonderq\.(\w+)", snippet(section)))
    assert names <= set(wonderq.__all__), names - set(wonderq.__all__)
