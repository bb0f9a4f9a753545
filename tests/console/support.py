"""What the console's tests share: a real broker process, a line client, a browser.

Owns: :class:`Broker`, a ``wonderq serve`` process on free ports (TCP and HTTP),
awaited until it prints both ``listening on`` and ``http on``, stopped by PID
(SIGTERM, a bounded wait, SIGKILL past it), and restartable on the same ports
(the console's reconnection test); :class:`Line`, a blocking client of the
TCP protocol, to check over TCP what the console did; :func:`launch`, Debian's
Chromium headless through Playwright (it cannot download browsers here), skipped
when missing on a developer's machine and failed with ``CI=true`` (``require``).
Never: leaves a broker running after its block, or waits without a bound.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.processes import clean_env
from tests.support.tools import require

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 10.0
CHROMIUM = "/usr/bin/chromium"
#: as the machine's notes say: no network but loopback, a fresh profile (Playwright makes one)
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A ``wonderq serve`` process; ``base`` is its HTTP API's (and console's) URL."""

    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.args = list(args)
        self.log = log
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Broker:
        argv = [sys.executable, "-m", "broker", "serve", "--port", str(self.tcp_port)]
        argv += ["--http-port", str(self.http_port), *self.args]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=clean_env()
            )
        lines = [self._line(), self._line()]
        if not (lines[0].startswith("listening on ") and lines[1].startswith("http on ")):
            self.stop()
            raise AssertionError(f"the broker did not start: {lines}\n{self.log.read_text()}")
        return self

    def _line(self) -> str:
        """The next line the broker prints (read byte by byte: nothing is buffered here)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT_S
        out = b""
        while not out.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                break
            chunk = os.read(fd, 1)
            if not chunk:  # it exited
                break
            out += chunk
        return out.decode().rstrip("\n")

    def stop(self) -> None:
        """SIGTERM, a bounded wait, SIGKILL past it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def line(self) -> Line:
        return Line(self.tcp_port)


@contextmanager
def running(tmp: Path, *args: str) -> Iterator[Broker]:
    broker = Broker(args, tmp / f"broker-{free_port()}.log").start()
    try:
        yield broker
    finally:
        broker.stop()


class Line:
    """A blocking TCP client of the line protocol (one connection: its leases are its own)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT_S)
        self.reader = self.sock.makefile("rb")

    def call(self, **request: Any) -> dict[str, Any]:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, Any] = json.loads(self.reader.readline())
        return reply

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> Line:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def put_many(broker: Broker, queue: str, bodies: Sequence[Any], **fields: Any) -> list[str]:
    with broker.line() as tcp:
        reply = tcp.call(op="PUT", queue=queue, messages=[{"body": b, **fields} for b in bodies])
    assert reply["ok"], reply
    ids: list[str] = reply["ids"]
    return ids


def dead_letter(broker: Broker, queue: str, body: Any) -> str:
    """Put ``body`` with one attempt, receive it and NACK it: a dead letter of ``queue``."""
    with broker.line() as tcp:
        put = tcp.call(op="PUT", queue=queue, body=body, max_attempts=1)
        got = tcp.call(op="GET", queue=queue)
        assert [m["id"] for m in got["messages"]] == [put["id"]], got
        nack = tcp.call(op="NACK", id=put["id"])
        assert nack == {"ok": True, "dead": True}, nack
    message_id: str = put["id"]
    return message_id


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless (skipped when missing; failed on CI)."""
    require(
        shutil.which(CHROMIUM) is not None,
        f"{CHROMIUM} is not installed (apt-get install chromium)",
    )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
