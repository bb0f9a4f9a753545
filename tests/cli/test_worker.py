"""``wonderq worker QUEUE module:function``, run as a real process: it handles messages, logs
each failure with its traceback, stops cleanly on SIGINT and SIGTERM (finishing what it holds),
reconnects across a broker restart, and speaks TLS with a token."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from broker.config import Config
from broker.server import Server
from tests.cli.shell import wonderq
from tests.support import BrokerProcess, CertFiles, LineClient, clean_env

TASKS = """
import time

def handle(message):
    if message.body == "bad":
        raise ValueError("bad body")
    if message.body == "slow":
        print("started slow", flush=True)
        time.sleep(1.0)  # real time: still running when the test stops the worker
    print("handled", message.body, dict(message.headers), flush=True)

async def handle_async(message):
    if message.body == "bad":
        raise ValueError("bad body")
    print("handled", message.body, flush=True)

not_a_function = 42
"""
LINE_S = 20.0  # the longest a line of the worker's may take to come


class Worker:
    """A ``wonderq worker`` process; its output read a line at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[str] = []

    async def until(self, text: str) -> str:
        """Read stdout and stderr lines until one holds ``text``; that line."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(LINE_S):
                while True:
                    line = (await self.proc.stdout.readline()).decode()
                    if not line:
                        raise AssertionError(f"the worker exited before {text!r}:\n{self.text}")
                    self.seen.append(line)
                    if text in line:
                        return line
        except TimeoutError:
            raise AssertionError(f"no {text!r} within {LINE_S} s:\n{self.text}") from None

    @property
    def text(self) -> str:
        return "".join(self.seen)

    async def stop(self, sig: signal.Signals) -> int:
        """Send ``sig``; the exit code, with the rest of the output read."""
        self.proc.send_signal(sig)
        assert self.proc.stdout is not None
        async with asyncio.timeout(LINE_S):
            rest = await self.proc.stdout.read()
            code = await self.proc.wait()
        self.seen.append(rest.decode())
        return code


@asynccontextmanager
async def worker(
    tmp_path: Path, port: int, handler: str, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[Worker]:
    (tmp_path / "tasks.py").write_text(TASKS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "worker", "jobs", handler, "--port", str(port), *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=clean_env(env),
        cwd=tmp_path,
    )  # fmt: skip
    running = Worker(proc)
    try:
        await running.until("working on jobs")
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("handler", ["tasks:handle", "tasks:handle_async"])
async def test_worker_handles_logs_failures_with_tracebacks_and_stops_on_sigint(
    server: Server, tmp_path: Path, handler: str
) -> None:
    async with (
        worker(tmp_path, server.port, handler) as running,
        await LineClient.connect(server.port) as c,
    ):
        await c.call(op="PUT", queue="jobs", body="bad", max_attempts=2)
        await running.until("retrying in 1 s")
        await running.until("ValueError: bad body")  # the traceback's last line
        await running.until("that was its last attempt: moved to jobs.dead")
        await c.call(op="PUT", queue="jobs", body="fine")
        await running.until("handled fine")
        await running.until("done in")
        assert await running.stop(signal.SIGINT) == 0
    assert "Traceback" in running.text and 'raise ValueError("bad body")' in running.text
    assert "KeyboardInterrupt" not in running.text and "stopped" in running.text
    async with await LineClient.connect(server.port) as c:
        stats = (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]
    assert (stats["acked"], stats["dead"], stats["ready"], stats["leased"]) == (1, 1, 0, 0)


async def test_sigterm_lets_the_running_handler_finish_and_ack(
    server: Server, tmp_path: Path
) -> None:
    async with (
        worker(tmp_path, server.port, "tasks:handle") as running,
        await LineClient.connect(server.port) as c,
    ):
        await c.call(op="PUT", queue="jobs", body="slow")
        await running.until("started slow")
        assert await running.stop(signal.SIGTERM) == 0
        assert "handled slow" in running.text and "done in" in running.text
        stats = (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]
        assert (stats["acked"], stats["ready"], stats["leased"]) == (1, 0, 0)


async def test_worker_reconnects_when_the_broker_restarts(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    async with await BrokerProcess.start_with(log, "--no-http") as broker:
        port = broker.port
        async with worker(tmp_path, port, "tasks:handle") as running:
            async with await LineClient.connect(port) as c:
                await c.call(op="PUT", queue="jobs", body="before")
                await running.until("handled before")  # connected
            await broker.stop()
            await running.until("attempt 1 failed")  # a warning per attempt, while it is down
            # said first: the GET's connection was lost, or (the stop racing the ACK of
            # "before") the ACK was refused and that message will come again
            assert "lost the connection to" in running.text or (
                "could not ACK message" in running.text
                and "the server is shutting down" in running.text
            ), running.text
            async with await BrokerProcess.start_with(log, "--no-http", port=port):
                async with await LineClient.connect(port) as c:
                    await c.call(op="PUT", queue="jobs", body="after the restart")
                    await running.until("handled after the restart")
                assert await running.stop(signal.SIGTERM) == 0


async def test_worker_with_a_token_over_tls(tmp_path: Path, test_cert: CertFiles) -> None:
    token = "worker-token-0123456789"
    config = Config(host="127.0.0.1", port=0, token=token)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        env = {"WONDERQ_TOKEN": token, "WONDERQ_TLS_CA": str(test_cert.cert)}
        async with worker(tmp_path, srv.port, "tasks:handle", env=env) as running:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=test_cert.client_context(), server_hostname="localhost"
            )
            async with LineClient(reader, writer) as c:
                await c.call(op="AUTH", token=token)
                await c.call(op="PUT", queue="jobs", body="secret")
            await running.until("handled secret")
            assert await running.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("tasks", "HANDLER is module:function (e.g. tasks:resize), not 'tasks'"),
        ("nosuch:handle", "no module named 'nosuch'"),
        ("tasks:nope", "tasks has no 'nope'"),
        ("tasks:not_a_function", "tasks:not_a_function is a int, not a function"),
    ],
)
async def test_a_handler_that_cannot_be_loaded_is_a_usage_error(
    server: Server, tmp_path: Path, handler: str, message: str
) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    from tests.support import run_python

    code, _, err = await run_python(
        "-m", "broker", "worker", "jobs", handler, "--port", str(server.port), cwd=tmp_path
    )
    assert code == 2 and message in err, err


async def test_worker_help_says_how_handlers_work() -> None:
    out, _ = await wonderq("worker", "--help")
    text = " ".join(out.split())
    assert "return to ack it, raise to retry it later" in text
    assert "SIGINT (Ctrl-C) or SIGTERM stops it" in text
