"""Real redis-server processes for tests: on free loopback ports, stopped by PID.

A test (or a session fixture) starts a ``RedisServer`` and stops it in
``finally``; nothing is left running. When ``CI=true`` a missing redis-server
fails the run instead of skipping (``require_redis``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
#: set (to a Redis URL) by the black-box suites' backend parameter: servers run on Redis
REDIS_URL_ENV = "WONDERQ_TEST_REDIS_URL"


def require_redis() -> str:
    """The redis-server binary; skips the test without one (fails it on CI)."""
    if REDIS_SERVER is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI must have it: .ci/run installs it)")
        pytest.skip("redis-server is not installed")
    return REDIS_SERVER


def require_redis_cli() -> str:
    """redis-cli (next to redis-server in the Debian package); as ``require_redis``."""
    require_redis()
    cli = shutil.which("redis-cli")
    if cli is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-cli is not installed (CI must have it: .ci/run installs it)")
        pytest.skip("redis-cli is not installed")
    return cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout_s: float = 0.5) -> bool:
    """True if a Redis on ``port`` answers PING (a raw socket: no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def flush(port: int) -> None:
    """FLUSHALL on the Redis at ``port`` (its functions stay loaded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"FLUSHALL\r\n")
        assert s.recv(64).startswith(b"+OK")


class RedisServer:
    """One redis-server on a free loopback port; ``stop()`` ends it by PID."""

    def __init__(self, workdir: Path, *extra: str, port: int | None = None) -> None:
        self.binary = require_redis()
        self.port = port or free_port()
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / f"redis-{self.port}.log"),
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)  # real time: a starting redis-server, polled with PING
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a frozen one must run to die cleanly
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
