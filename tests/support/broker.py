"""A real ``wonderq serve`` process (on port 0), awaited until ready and stopped by PID.

Owns: starting ``python -m broker serve --port 0 ARGS`` (in :func:`clean_env`'s
environment), reading its one ``listening on HOST:PORT`` line on stdout, sending
its stderr to a log file a test can read, and stopping it by PID: a signal, a
bounded wait, SIGKILL past the bound. Used as ``async with await
BrokerProcess.start_with(log, ...) as broker:``, the process is stopped when the
block ends, whatever happened inside.

Never: leaves a process running after its block or after a failed start; waits
without a bound.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.support.processes import clean_env

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
READY = b"listening on "


class BrokerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, host: str, port: int, log: Path) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.log = log

    @classmethod
    async def start(
        cls,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        log: Path | None = None,
    ) -> BrokerProcess:
        """A broker on ``data_dir``; its log goes next to the directory (or to ``log``)."""
        log = log or data_dir.parent / f"{data_dir.name}-broker.log"
        return await cls.start_with(log, "--data-dir", str(data_dir), *args, env=env, prefix=prefix)

    @classmethod
    async def start_with(
        cls,
        log: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int = 0,
        prefix: tuple[str, ...] = (),
    ) -> BrokerProcess:
        """A broker with ``args`` (in memory unless they name a data dir), stderr to ``log``.

        Returns once it listens; if it exits or says anything else first, it is
        stopped and the start fails with its log. ``port`` 0 is any free port.
        ``prefix`` runs it through a command that execs it (the PID stays the
        broker's), such as ``nsenter -t PID -m --``.
        """
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *prefix, sys.executable, "-m", "broker", "serve", "--port", str(port), *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=clean_env(env),
            )  # fmt: skip
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(START_TIMEOUT_S):
                line = (await proc.stdout.readline()).rstrip(b"\n")
        except BaseException:
            await _kill(proc)
            raise
        if not line.startswith(READY):
            await _kill(proc)
            text = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"broker did not start: {line!r}\n{text}")
        host, _, number = line[len(READY) :].decode().rpartition(":")
        return cls(proc, host, int(number), log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        """Its resident memory now, in bytes (from /proc)."""
        with open(f"/proc/{self.pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL (a crash), and wait for the exit."""
        await _kill(self.proc)

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` (unless it has exited) and :meth:`wait` for the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.wait()

    async def wait(self) -> int:
        """The exit code; a broker still running after STOP_TIMEOUT_S is killed
        and the wait fails."""
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                return await self.proc.wait()
        except TimeoutError:
            await _kill(self.proc)
            raise AssertionError(
                f"broker {self.pid} still running after {STOP_TIMEOUT_S} s"
            ) from None

    async def stdout_line(self) -> str:
        """The next line it prints after the listening one (``http on ...``), or ""
        at its end; bounded by START_TIMEOUT_S."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            return (await self.proc.stdout.readline()).decode().rstrip("\n")

    async def stderr(self) -> str:
        """What the broker wrote on stderr so far (its log)."""
        return await asyncio.to_thread(self.log.read_text)

    async def __aenter__(self) -> BrokerProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.running:
            await self.stop()


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    await proc.wait()
