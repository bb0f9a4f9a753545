"""Broker processes for the bench: start on a loopback port, measure from /proc, stop by PID.

Owns: what the bench can run (``SERVERS``: each server's command line in memory
and durable flavours, and the adapter that speaks to it: WonderQ, the floor,
beanstalkd, Redis, and WonderQ over its HTTP API), waiting until it accepts
connections, reading its CPU time and resident memory from ``/proc/PID``, and
stopping it (SIGTERM, then SIGKILL) by the PID it started, never by name. Another flavour of server (WonderQ over
another backend, say) is one more entry in ``SERVERS``.
Must never: bind anything but 127.0.0.1, or leave a process running on return.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from broker.bench import resp

HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 10.0
PEERS: Final = ("floor", "beanstalkd", "redis", "http")
BROKERS: Final = ("wonderq", *PEERS)
FSYNC_MODES: Final = ("always", "everysec")

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


class BenchError(Exception):
    """The bench cannot run as asked (a peer missing, a server that will not start...)."""


@dataclass
class Measured:
    """A running process whose CPU and memory we can read (ours or one we started)."""

    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far (from /proc/PID/stat)."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_bytes(self) -> int:
        """Resident set size now (from /proc/PID/statm)."""
        return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * _PAGE

    def store_cpu_s(self) -> float | None:
        """CPU seconds used so far by the store that holds the queues (Redis), or None
        when the broker holds them itself."""
        return None


@dataclass
class BrokerProcess(Measured):
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def store_cpu_s(self) -> float | None:
        if self.name != "redis":
            return None
        return resp.cpu_s(self.port)  # Redis is its own store: its own count, to the us

    def stop(self) -> None:
        """Stop the process we started (by its PID) and remove its data dir."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def installed(name: str) -> str | None:
    """The path of a server's binary (this Python for ours), or None if it is not installed."""
    binary = SERVERS[name].binary
    if binary is None:
        return sys.executable
    return shutil.which(binary) or (
        f"/usr/bin/{binary}" if os.access(f"/usr/bin/{binary}", os.X_OK) else None
    )


def _wait_accepting(proc: subprocess.Popen[bytes], port: int, name: str, errors: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            err = errors.read(4096).decode(errors="replace")
            raise BenchError(f"{name} exited with status {proc.returncode}: {err.strip()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise BenchError(
        f"{name} did not accept connections on {HOST}:{port} within {START_TIMEOUT_S}s"
    )


#: ``python -m broker`` as this interpreter installed it: ``-P`` keeps the current
#: directory off ``sys.path``, so a bench run from another checkout's directory
#: still starts this installation's broker, not that checkout's.
WONDERQ: Final = (sys.executable, "-P", "-m", "broker")


def wonderq_supports_durability() -> bool:
    out = subprocess.run(
        [*WONDERQ, "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    return "--data-dir" in out and "--fsync" in out


Command = Callable[[str, int, str | None, Path | None], list[str]]


def _wonderq(binary: str, port: int, fsync: str | None, data_dir: Path | None) -> list[str]:
    cmd = [*WONDERQ, "serve", "--host", HOST, "--port", str(port), "--log-level", "WARNING"]
    cmd.append("--no-http")  # the TCP protocol only (the HTTP API would take a fixed port)
    if fsync is not None:
        cmd += ["--data-dir", str(data_dir), "--fsync", fsync]
    return cmd


def _wonderq_http(binary: str, port: int, fsync: str | None, data_dir: Path | None) -> list[str]:
    """WonderQ with its HTTP API on ``port`` (the load speaks HTTP; TCP on another port)."""
    cmd = _wonderq(binary, free_port(), fsync, data_dir)
    cmd[cmd.index("--no-http")] = "--http-port"
    return [*cmd, str(port)]


def _floor(binary: str, port: int, fsync: str | None, data_dir: Path | None) -> list[str]:
    return [sys.executable, "-P", "-m", "broker.bench.floor", str(port)]


def _beanstalkd(binary: str, port: int, fsync: str | None, data_dir: Path | None) -> list[str]:
    cmd = [binary, "-l", HOST, "-p", str(port), "-z", str(1 << 20)]
    if fsync is not None:  # -f0: fsync after every write; -f1000: at most once a second
        cmd += ["-b", str(data_dir), "-f", "0" if fsync == "always" else "1000"]
    return cmd


def _redis(binary: str, port: int, fsync: str | None, data_dir: Path | None) -> list[str]:
    cmd = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--daemonize", "no"]
    cmd += ["--protected-mode", "no", "--logfile", "", "--loglevel", "warning"]
    if fsync is None:
        cmd += ["--appendonly", "no"]
    else:
        cmd += ["--appendonly", "yes", "--appendfsync", fsync, "--dir", str(data_dir)]
    return cmd


@dataclass(frozen=True)
class Server:
    """One kind of server the bench can start, and how the load talks to it."""

    adapter: str  # the name of its adapter in ``adapters.ADAPTERS``
    command: Command  # (binary, port, fsync or None, data dir or None) -> argv
    binary: str | None = None  # a peer's server binary on PATH (None: this Python)
    durable: bool = True  # has a log to run with --durable


SERVERS: Final[dict[str, Server]] = {
    "wonderq": Server("wonderq", _wonderq),
    "floor": Server("wonderq", _floor, durable=False),
    "beanstalkd": Server("beanstalkd", _beanstalkd, binary="beanstalkd"),
    "redis": Server("redis", _redis, binary="redis-server"),
    "http": Server("http", _wonderq_http),  # WonderQ again, over its HTTP API
}


def start(name: str, *, fsync: str | None = None) -> BrokerProcess:
    """Start ``name`` on a free loopback port and wait until it accepts connections."""
    if fsync is not None and name == "wonderq" and not wonderq_supports_durability():
        raise BenchError(
            "--durable needs `wonderq serve --data-dir DIR --fsync MODE`, "
            "which this WonderQ does not have yet"
        )
    binary = installed(name)
    if binary is None:
        raise BenchError(f"{name} is not installed")
    if fsync is not None and not SERVERS[name].durable:
        raise BenchError(f"{name} has no durable log")
    data_dir = Path(tempfile.mkdtemp(prefix=f"wonderq-bench-{name}-")) if fsync else None
    port = free_port()
    return spawn(name, SERVERS[name].command(binary, port, fsync, data_dir), port, data_dir)


def spawn(name: str, cmd: list[str], port: int, data_dir: Path | None = None) -> BrokerProcess:
    """Run ``cmd`` (a server that will listen on ``port``) and wait until it accepts
    connections; stopped by its PID if it does not."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
        )
        broker = BrokerProcess(pid=proc.pid, name=name, port=port, proc=proc, data_dir=data_dir)
        try:
            _wait_accepting(proc, port, name, errors)
        except BaseException:
            broker.stop()
            raise
    return broker
