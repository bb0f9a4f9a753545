"""The attacks of issue 18, each against a fresh broker, with a bystander watching.

For each row of the issue's table (``--rows``, default all), this starts a
broker (``python -m broker serve`` on loopback, port 0, stopped by its PID),
starts a *bystander*, a separate process doing PUT, GET and ACK on its own
queue every 100 ms, runs the attack (bounded in time and size, ``--scale``
shrinks or grows it), and prints one table: the row, what the attacker did,
what it saw, the bystander's worst and median operation, and the broker's peak
and final RSS. ``--src DIR`` runs the broker of another checkout (e.g. an
export of main, for the figures before a change); ``--json`` prints every
figure as JSON too. Rows 21-23 (the data directory) start their own brokers,
several each (a restart is the attack), with no bystander: row 21 mounts a
24 MiB tmpfs in a private mount namespace (``unshare --mount``, root).

``--soak`` runs every row that can share a broker against one (with a token,
``--max-memory 1g`` and ``--max-buffered 64m``), one after the other (their
queues deleted between two), with one bystander all along, and prints its
worst operation during each row and during the clean-up after it, the RSS
after each, and the peak
(tests/bench/test_attack_soak.py runs it).

The attackers run at a lower CPU priority than the broker and the bystander
(``--nice``, default 10: each attack runs in a thread of its own that lowers
its nice value, which on Linux is a thread's own and passes to the threads it
starts; the broker and the bystander are started by the main thread and keep
theirs). On a machine of 2 cores the attack's own CPU, a thread pipelining
requests or flooding lines as fast as it can, would otherwise take the core
the bystander needs, and the bystander would measure the load generator, not
the broker: on separate machines they never compete. ``--nice 0`` measures
them on equal terms.

Run: ``.venv/bin/python bench/attack.py --rows 8,15,16`` (see docs/security.md).
Never run it against a broker you care about: it starts its own.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import multiprocessing
import os
import queue
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = "attack-harness-token-0123456789"
#: how much lower the attackers' CPU priority is than the broker's and the bystander's
ATTACKER_NICE = 10
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


# ---------------------------------------------------------------- the broker


@dataclass
class Broker:
    proc: subprocess.Popen[bytes]
    port: int
    token: str | None
    metrics_port: int | None = None
    peak_rss: int = 0
    _sampling: bool = True
    _sampler: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def cpu_s(self) -> float:
        """CPU seconds the broker used so far (user and system)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError, ValueError):
            return 0.0

    def open_fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def _sample(self) -> None:
        while self._sampling and self.proc.poll() is None:
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.05)

    def start_sampling(self) -> None:
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        """A client of this broker (authenticated when it has a token), closed after."""
        client = Client(self.port, self.token)
        try:
            yield client
        finally:
            client.close()

    def stop(self) -> None:
        self._sampling = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_broker(
    src: Path | None,
    *flags: str,
    token: str | None = None,
    prefix: tuple[str, ...] = (),
    log: Path | None = None,
) -> Broker:
    """A broker (``prefix`` runs it through a command that execs it: nsenter); its
    stderr to ``log``, whose last line a failed start quotes."""
    env = {k: v for k, v in os.environ.items() if k != "WONDERQ_TOKEN"}
    if src is not None:
        env["PYTHONPATH"] = f"{src}:{src / 'clients' / 'python'}"
    if token is not None:
        env["WONDERQ_TOKEN"] = token
    cmd = [*prefix, sys.executable, "-m", "broker", "serve", "--port", "0"]
    with open(log or os.devnull, "ab") as err:
        proc = subprocess.Popen(  # in src: ``-m`` puts the working directory first on the path
            [*cmd, "--log-level", "ERROR", *flags],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=src,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"listening on "):
        proc.kill()
        proc.wait()
        said = log.read_text().strip().splitlines()[-1:] if log is not None else []
        raise SystemExit(f"the broker did not start: {line!r} {' '.join(said)}")
    broker = Broker(proc, int(line.rsplit(b":", 1)[1]), token)
    broker.start_sampling()
    return broker


# ------------------------------------------------------------------ clients


class Client:
    """A blocking line client (the harness's attackers and the bystander)."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 60.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        if token is not None:
            reply = self.call({"op": "AUTH", "token": token})
            assert reply.get("ok"), reply

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed by the broker")
        out: dict[str, Any] = json.loads(line)
        return out

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(request).encode() + b"\n")
        return self.reply()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def _bystander(port: int, token: str | None, stop: Any, out: Any) -> None:
    """PUT, GET, ACK every 100 ms; report the slowest operation, the median, and every
    operation as (when it began, wall clock; seconds it took)."""
    times: list[tuple[float, float]] = []
    errors = 0
    try:
        client = Client(port, token, timeout=120)
    except OSError as exc:
        out.put({"error": str(exc)})
        return
    while not stop.is_set():
        try:
            _bystander_round(client, times)
        except (OSError, ConnectionError, ValueError):
            errors += 1
            with contextlib.suppress(OSError):
                client = Client(port, token, timeout=120)
        stop.wait(0.1)
    took = sorted(d for _, d in times)
    out.put(
        {
            "worst_ms": round(took[-1] * 1000, 1) if took else None,
            "p50_ms": round(took[len(took) // 2] * 1000, 2) if took else None,
            "ops": len(took),
            "errors": errors,
            "samples": times,
        }
    )


def _timed(
    client: Client, request: dict[str, Any], times: list[tuple[float, float]]
) -> dict[str, Any]:
    began, t0 = time.time(), time.perf_counter()
    reply = client.call(request)
    times.append((began, time.perf_counter() - t0))
    return reply


def _bystander_round(client: Client, times: list[tuple[float, float]]) -> None:
    _timed(client, {"op": "PUT", "queue": "bystander", "body": "b"}, times)
    got = _timed(client, {"op": "GET", "queue": "bystander", "lease": 60}, times)
    for message in got.get("messages", []):
        _timed(client, {"op": "ACK", "id": message["id"]}, times)


@contextlib.contextmanager
def bystander(broker: Broker) -> Iterator[dict[str, Any]]:
    ctx = multiprocessing.get_context("fork")
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_bystander, args=(broker.port, broker.token, stop, out))
    proc.start()
    result: dict[str, Any] = {}
    time.sleep(0.3)  # its first operations, before the attack
    try:
        yield result
    finally:
        stop.set()
        try:
            result.update(out.get(timeout=150))
        except (queue.Empty, OSError, EOFError):  # the bystander died: say so in the table
            result["error"] = "no report"
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def fill(
    port: int, token: str | None, queue: str, count: int, body: str = "x", **fields: Any
) -> None:
    """``count`` messages into ``queue`` (each with ``fields``), 1000 a request, pipelined
    16 deep."""
    client = Client(port, token)
    message = {"body": body, **fields}
    batch = json.dumps({"op": "PUT", "queue": queue, "messages": [message] * 1000})
    line = batch.encode() + b"\n"
    sent = 0
    while sent < count:
        window = min(16, (count - sent + 999) // 1000)
        client.send(line * window)
        for _ in range(window):
            client.reply()
        sent += window * 1000
    client.close()


def pipeline(client: Client, lines: list[bytes], window: int = 64) -> list[dict[str, Any]]:
    """Send ``lines`` ``window`` at a time, reading the replies; return the last window's."""
    replies: list[dict[str, Any]] = []
    for i in range(0, len(lines), window):
        chunk = lines[i : i + window]
        client.send(b"".join(chunk))
        replies = [client.reply() for _ in chunk]
    return replies


def _sender(sock: socket.socket, data: Iterator[bytes]) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(OSError):
            for chunk in data:
                sock.sendall(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def as_attacker(nice: int, attack: Callable[[], None]) -> None:
    """Run ``attack`` in a thread of its own at ``nice`` more than this process's nice
    value (Linux: the threads it starts inherit it, the main thread keeps its own); its
    exception, if any, is raised here."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            if nice:
                os.nice(nice)
            attack()
        except BaseException as exc:  # (re-raised in the caller's thread)
            failed.append(exc)

    thread = threading.Thread(target=run, name="attacker", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


# --------------------------------------------------------------------- rows


@dataclass
class Row:
    number: str
    did: str
    flags: tuple[str, ...] = ()
    token: bool = False
    needs_cert: bool = False
    saw: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


Attack = Callable[[Broker, Row, float], None]
ATTACKS: dict[str, tuple[Row, Attack]] = {}


def row(number: str, did: str, *flags: str, **options: bool) -> Callable[[Attack], Attack]:
    def register(attack: Attack) -> Attack:
        ATTACKS[number] = (Row(number, did, flags, **options), attack)
        return attack

    return register


@row("1", "GET q<N> for N new names (no body)")
def row_1(broker: Broker, r: Row, scale: float) -> None:
    n = int(200_000 * scale)
    with broker.client() as client:
        lines = [b'{"op":"GET","queue":"g%d"}\n' % i for i in range(n)]
        t0 = time.perf_counter()
        pipeline(client, lines, 256)
        elapsed = time.perf_counter() - t0
        queues = client.call({"op": "STATS"})["server"]["queues"]
        r.saw = f"{n} GETs in {elapsed:.1f} s; {queues} queues held"


@row("1b", "PUT, GET and ACK of one message on each of N new names (empty queues left)")
def row_1b(broker: Broker, r: Row, scale: float) -> None:
    n = int(150_000 * scale)
    refused = 0
    with broker.client() as client:
        for start in range(0, n, 500):
            names = [f"e{i}" for i in range(start, min(n, start + 500))]
            puts = pipeline(
                client, [b'{"op":"PUT","queue":"%s","body":1}\n' % q.encode() for q in names], 500
            )
            refused += sum(not p.get("ok") for p in puts)
            got = pipeline(
                client, [b'{"op":"GET","queue":"%s"}\n' % q.encode() for q in names], 500
            )
            ids = [m["id"] for g in got for m in g.get("messages", [])]
            if ids:
                client.call({"op": "ACK", "ids": ids})
        queues = client.call({"op": "STATS"})["server"]["queues"]
    r.saw = f"{n} names: {n - refused} PUTs ok, {refused} refused; {queues} queues held"


@row("2", "STATS and QUEUES with many queues")
def row_2(broker: Broker, r: Row, scale: float) -> None:
    n = int(200_000 * scale)
    with broker.client() as client:
        pipeline(client, [b'{"op":"PUT","queue":"s%d","body":1}\n' % i for i in range(n)], 256)
        sizes = []
        t0 = time.perf_counter()
        for op in ("STATS", "QUEUES"):
            client.send(json.dumps({"op": op}).encode() + b"\n")
            sizes.append(len(client.file.readline()))
        elapsed = time.perf_counter() - t0
    idle = [Client(broker.port, broker.token) for _ in range(8)]  # 8 STATS left unread
    for c in idle:
        c.send(b'{"op":"STATS"}\n')
    time.sleep(3)
    r.saw = (
        f"{n} queues: STATS reply {sizes[0] / MIB:.1f} MiB, QUEUES {sizes[1] / MIB:.1f} MiB, "
        f"both in {elapsed:.2f} s; 8 unread STATS"
    )
    for c in idle:
        c.close()


def _fill_keyed_delayed(broker: Broker, n: int) -> int:
    """PUT up to ``n`` 1-byte keyed messages delayed an hour, 1000 a batch; how many fit."""
    stored = 0
    with broker.client() as client:
        for i in range(0, n, 1000):
            batch = [{"body": 1, "key": f"k{i + j}", "delay": 3600} for j in range(1000)]
            if not client.call({"op": "PUT", "queue": "mem", "messages": batch}).get("ok"):
                break
            stored += 1000
    return stored


@row("3", "1-byte keyed delayed bodies under --max-memory 1000000", "--max-memory", "1000000")
def row_3(broker: Broker, r: Row, scale: float) -> None:
    n = int(300_000 * scale)
    stored = _fill_keyed_delayed(broker, n)
    r.saw = f"{stored} of {n} 1-byte messages accepted"


@row("3b", "1M 1-byte keyed delayed bodies under --max-memory 64m", "--max-memory", "64m")
def row_3b(broker: Broker, r: Row, scale: float) -> None:
    n = int(1_000_000 * scale)
    base = broker.rss()
    stored = _fill_keyed_delayed(broker, n)
    grown = (broker.rss() - base) / MIB
    r.saw = f"{stored} of {n} accepted; RSS grew {grown:.0f} MB (the limit: 64 MiB)"


@row("4", "acked history over 300 queues")
def row_4(broker: Broker, r: Row, scale: float) -> None:
    per_queue = int(3000 * scale)
    acked: list[str] = []
    with broker.client() as client:
        for q in range(300):
            queue = f"h{q}"
            for start in range(0, per_queue, 1000):
                size = min(1000, per_queue - start)
                client.call({"op": "PUT", "queue": queue, "messages": [{"body": 1}] * size})
                got = client.call({"op": "GET", "queue": queue, "max": size})
                ids = [m["id"] for m in got.get("messages", [])]  # (none: refused, full)
                client.call({"op": "ACK", "ids": ids})
                acked.extend(ids[:1])
        held = client.call({"op": "STATS"})["server"]["messages"]
        known = sum(
            client.call({"op": "INFO", "id": i}).get("ok", False) for i in acked[::-1][:1000]
        )
        r.saw = (
            f"{300 * per_queue} put, got and acked; STATS says {held} messages held; "
            f"INFO still knows {known} of the last 1000 batches' first ids"
        )


@row("5", "100k waiting GETs on one connection, then 300 pipelined CANCELs")
def row_5(broker: Broker, r: Row, scale: float) -> None:
    _waits_then_cancels(broker, r, int(100_000 * scale))


@row("5b", "the same with --max-waiting 100000 (CANCEL's own cost)", "--max-waiting", "100000")
def row_5b(broker: Broker, r: Row, scale: float) -> None:
    _waits_then_cancels(broker, r, int(100_000 * scale))


def _waits_then_cancels(broker: Broker, r: Row, n: int) -> None:
    with broker.client() as client:
        counted = {"refused": 0}

        def read_until_ping() -> None:  # the refused GETs are answered at once
            while client.reply().get("rid") != "p":
                counted["refused"] += 1

        reader = threading.Thread(target=read_until_ping, daemon=True)
        reader.start()
        client.send(
            b"".join(b'{"op":"GET","queue":"w","wait":3000,"rid":%d}\n' % i for i in range(n))
        )
        client.send(b'{"op":"PING","rid":"p"}\n')  # every GET is in once this is answered
        reader.join(timeout=120)
        refused = counted["refused"]
        cancels = 300
        t0 = time.perf_counter()
        client.send(b"".join(b'{"op":"CANCEL","get":%d}\n' % i for i in range(cancels)))
        ended = answered = 0
        while answered < cancels:  # each CANCEL's own reply, and the GETs they ended
            reply = client.reply()
            if "cancelled" in reply:
                answered += 1
                ended += reply["cancelled"]
        took = time.perf_counter() - t0
        r.saw = (
            f"{n} GETs sent: {n - refused} waiting, {refused} refused; {cancels} CANCELs "
            f"({ended} ended one) took {took:.2f} s"
        )


@row("7", "200 pipelined PEEKs of a 1-message queue, then PURGE and REDRIVE, with many held")
def row_7(broker: Broker, r: Row, scale: float) -> None:
    n = int(1_000_000 * scale)
    # priority 1: each message is an object (plain ones are kept compact, never scanned)
    fill(broker.port, broker.token, "big", n, priority=1)
    fill(broker.port, broker.token, "back.dead", n // 2)  # dead letters, to REDRIVE
    with broker.client() as client:
        client.call({"op": "PUT", "queue": "small", "body": 1})
        t0 = time.perf_counter()
        pipeline(client, [b'{"op":"PEEK","queue":"small"}\n'] * 200, 200)
        peeks = time.perf_counter() - t0
        t0 = time.perf_counter()
        purged = client.call({"op": "PURGE", "queue": "big"})
        purge_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        moved = client.call({"op": "REDRIVE", "queue": "back"})
        r.saw = (
            f"{n + n // 2} held: 200 PEEKs {peeks:.2f} s; PURGE of {purged.get('purged')} "
            f"{purge_s:.2f} s; REDRIVE of {moved.get('redriven')} "
            f"{time.perf_counter() - t0:.2f} s"
        )


@row("8", "3000 batch ACKs of 1000 ids from one connection, pipelined")
def row_8(broker: Broker, r: Row, scale: float) -> None:
    rounds = int(3000 * scale)
    with broker.client() as client:
        client.call({"op": "PUT", "queue": "acks", "messages": [{"body": 1}] * 1000})
        got = client.call({"op": "GET", "queue": "acks", "max": 1000, "lease": 3600})
        ids = [m["id"] for m in got.get("messages", [])]  # (none: refused, full)
        line = json.dumps({"op": "ACK", "ids": ids}).encode() + b"\n"
        t0 = time.perf_counter()
        sender = _sender(client.sock, iter([line] * rounds))
        for _ in range(rounds):
            client.reply()
        sender.join()
        r.saw = f"{rounds} ACKs of {len(ids)} ids in {time.perf_counter() - t0:.1f} s"


@row("10", "a client that never reads, with 400 waiting GETs of max 1000")
def row_10(broker: Broker, r: Row, scale: float) -> None:
    n = int(400_000 * scale)
    reader = Client(broker.port, broker.token)
    reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.send(
        b"".join(
            b'{"op":"GET","queue":"nr","max":1000,"wait":600,"lease":3600,"rid":%d}\n' % i
            for i in range(400)
        )
    )
    time.sleep(0.5)
    fill(broker.port, broker.token, "nr", n, body="x" * 100)
    time.sleep(1)
    with broker.client() as client:
        figures = client.call({"op": "STATS", "queue": "nr"}).get("queues", {}).get("nr", {})
    r.saw = (
        f"{n} messages of 100 bytes put while it reads nothing: {figures.get('leased')} "
        f"went to its waiting GETs, {figures.get('ready')} stayed ready"
    )
    reader.close()


def _make_cert(folder: Path) -> tuple[Path, Path] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@row("11", "5000 stalled TLS handshakes, --max-connections 100", needs_cert=True)
def row_11(broker: Broker, r: Row, scale: float) -> None:
    n = int(5000 * scale)
    stalled = []
    for _ in range(n):
        try:
            stalled.append(socket.create_connection(("127.0.0.1", broker.port), timeout=5))
        except OSError:
            break
    time.sleep(1)
    fds = broker.open_fds()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"PING\n")
            real = "answered" if tls.recv(100).startswith(b'{"ok":true') else "refused"
    except (OSError, ssl.SSLError) as exc:
        real = f"failed ({type(exc).__name__})"
    r.saw = f"{len(stalled)} stalled; broker holds {fds} fds; a real TLS client: {real}"
    for sock in stalled:
        sock.close()


@row("12", "a peer that vanishes while it holds a lease and a waiting GET")
def row_12(broker: Broker, r: Row, scale: float) -> None:
    with broker.client() as client:
        client.call({"op": "PUT", "queue": "vanish", "body": 1})
        client.call({"op": "GET", "queue": "vanish", "lease": 43200})
        client.send(b'{"op":"GET","queue":"vanish","wait":3600,"rid":1}\n')
        local = client.sock.getsockname()[1]
        ss = shutil.which("ss")
        timer = "ss not installed"
        if ss is not None:
            out = subprocess.run(
                [ss, "-tno", "state", "established", f"( dport = :{local} )"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            timer = "keepalive timer " + ("on" if "keepalive" in out else "off")
        r.saw = f"(loopback cannot drop packets) broker side of the connection: {timer}"


@row("14", "half a line sent at 1 byte/s, default settings")
def row_14(broker: Broker, r: Row, scale: float) -> None:
    """The default idle timeout (from ``serve --help``), and the line dribbled for a while."""
    src = r.figures["src"]
    env = {**os.environ, "PYTHONPATH": str(src or "")}
    helped = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--help"],
        capture_output=True, text=True, timeout=30, env=env, cwd=src,
    ).stdout  # fmt: skip
    words = " ".join(helped.split())
    default = words.rsplit("--idle-timeout", 1)[1].split("(default", 1)[1].split(")", 1)[0]
    limit_s = 20 * scale
    sock = socket.create_connection(("127.0.0.1", broker.port))
    sock.settimeout(1.0)
    t0 = time.perf_counter()
    closed = None
    while time.perf_counter() - t0 < limit_s and closed is None:
        try:
            sock.sendall(b"x")
            if sock.recv(1) == b"":
                closed = time.perf_counter() - t0
        except TimeoutError:
            continue
        except OSError:
            closed = time.perf_counter() - t0
    sock.close()
    seen = f"closed after {closed:.0f} s" if closed else f"still open after {limit_s:.0f} s"
    r.saw = f"idle timeout by default:{default}; {seen}"


@row("15", "1500 connections each sending ~1 MiB of one line, never authenticating", token=True)
def row_15(broker: Broker, r: Row, scale: float) -> None:
    _partial_lines(broker, r, int(1500 * scale))


@row("15b", "the same without a token (the global budget instead)")
def row_15b(broker: Broker, r: Row, scale: float) -> None:
    _partial_lines(broker, r, int(1500 * scale))


def _partial_lines(broker: Broker, r: Row, n: int) -> None:
    chunk = b"[" * (64 * 1024)
    socks = []
    closed_early = 0
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", broker.port), timeout=5))
        except OSError:
            break
    for _ in range(16):  # 16 x 64 KiB each, interleaved: every connection holds a partial line
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(chunk)
    time.sleep(2)
    held = broker.rss()
    for sock in socks:
        sock.settimeout(0)
        with contextlib.suppress(OSError):
            if sock.recv(1 << 16) == b"":
                closed_early += 1
        sock.close()
    time.sleep(3)
    r.figures["rss_held_mb"] = round(held / MIB)
    r.saw = (
        f"{len(socks)} connections x 1 MiB sent: RSS {held / MIB:.0f} MB while held, "
        f"{broker.rss() / MIB:.0f} MB 3 s after they closed"
    )


@row("16", "1 MiB lines before AUTH from two threads for 10 s", token=True)
def row_16(broker: Broker, r: Row, scale: float) -> None:
    body = json.dumps({"op": "PUT", "queue": "q", "body": "x" * (MIB - 100)}).encode() + b"\n"
    stop = threading.Event()
    sent = [0, 0]  # lines sent whole, by each thread
    opened = [0, 0]

    def flood(slot: int) -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
                    opened[slot] += 1
                    for _ in range(3):
                        sock.sendall(body)
                        sent[slot] += 1
            except OSError:
                continue

    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(2)]
    cpu_s = broker.cpu_s()
    for thread in threads:
        thread.start()
    time.sleep(10 * scale)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    cpu_s = broker.cpu_s() - cpu_s
    took_s = 10 * scale
    r.saw = (
        f"{sum(opened)} connections, {sum(sent)} lines of 1 MiB sent whole in {took_s:.0f} s; "
        f"the broker used {cpu_s / took_s:.0%} of a core"
    )


@row("18", "wrong tokens, reconnecting after each lockout, for 5 s", token=True)
def row_18(broker: Broker, r: Row, scale: float) -> None:
    guesses = refused = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 5 * scale:
        try:
            client = Client(broker.port, None, timeout=5)
            for i in range(3):
                reply = client.call({"op": "AUTH", "token": f"guess-{guesses}-{i}"})
                if "too many" in reply.get("message", ""):
                    refused += 1
                    break
                guesses += 1
            client.close()
        except (OSError, ConnectionError):
            continue
    elapsed = time.perf_counter() - t0
    r.saw = f"{guesses} tokens compared ({guesses / elapsed:.0f}/s), {refused} AUTHs refused unread"


@row("20", "/metrics scraped with 100k queues (5 at once)")
def row_20(broker: Broker, r: Row, scale: float) -> None:
    n = int(100_000 * scale)
    with broker.client() as client:
        pipeline(client, [b'{"op":"PUT","queue":"m%d","body":1}\n' % i for i in range(n)], 256)
        assert broker.metrics_port is not None
        times: list[float] = []
        statuses: list[str] = []
        auth = f"Authorization: Bearer {broker.token}\r\n" if broker.token else ""
        request = f"GET /metrics HTTP/1.0\r\n{auth}\r\n".encode()

        def scrape() -> None:
            t0 = time.perf_counter()
            got = b""
            with socket.create_connection(
                ("127.0.0.1", broker.metrics_port or 0), timeout=120
            ) as s:
                s.sendall(request)
                while chunk := s.recv(1 << 16):
                    got = got or chunk  # (its first line: the status)
            times.append(time.perf_counter() - t0)
            statuses.append(got.split(b"\r\n", 1)[0].decode(errors="replace").split(" ", 1)[-1])

        threads = [threading.Thread(target=scrape) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        said = ", ".join(sorted(set(statuses))) or "no reply"
        r.saw = f"{n} queues: 5 scrapes ({said}), slowest {max(times, default=0):.1f} s"


# ------------------------------------- rows 21-23: the data dir (own brokers)

#: rows that start their own brokers (several, or none that stays up): no bystander
Standalone = Callable[[Row, Path, Path | None], None]  # (row, workdir, --src)
STANDALONE: dict[str, tuple[Row, Standalone]] = {}


def standalone(number: str, did: str) -> Callable[[Standalone], Standalone]:
    def register(attack: Standalone) -> Standalone:
        STANDALONE[number] = (Row(number, did), attack)
        return attack

    return register


def _try_start(
    src: Path | None, log: Path, *flags: str, prefix: tuple[str, ...] = ()
) -> Broker | str:
    """A broker, or why it did not start (its error line, shortened)."""
    try:
        return start_broker(src, *flags, prefix=prefix, log=log)
    except SystemExit as exc:
        return str(exc).split("wonderq serve: ", 1)[-1][:160]


def _put_each(broker: Broker, count: int, body: str = "b", batch: int = 1) -> int:
    """PUT ``count`` messages, ``batch`` a request, until one is refused: how many got ok."""
    done = 0
    with broker.client() as client:
        while done < count:
            reply = client.call({"op": "PUT", "queue": "d", "messages": [{"body": body}] * batch})
            if not reply.get("ok"):
                break
            done += batch
    return done


def _held(broker: Broker) -> int:
    with broker.client() as client:
        stats = client.call({"op": "STATS", "queue": "d"})
    return int(stats.get("queues", {}).get("d", {}).get("ready", 0))


_MOUNT = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && echo ready && exec sleep 600'


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size: int) -> Iterator[tuple[tuple[str, ...], Path] | None]:
    """A tmpfs of ``size`` bytes in a private mount namespace (root): the prefix that
    runs a command in it and the path this process reaches it by; None if not allowed."""
    holder = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", _MOUNT, "sh", str(size), str(mountpoint)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert holder.stdout is not None
    try:
        if holder.stdout.readline() != b"ready\n":
            yield None
            return
        seen = Path(f"/proc/{holder.pid}/root") / mountpoint.relative_to("/")
        yield ("nsenter", "--target", str(holder.pid), "--mount", "--"), seen
    finally:
        holder.kill()
        holder.wait()


@standalone("21", "disk full under --fsync always, then 4 MiB freed and a restart")
def row_21(r: Row, workdir: Path, src: Path | None) -> None:
    mountpoint = workdir / "disk"
    mountpoint.mkdir()
    with small_tmpfs(mountpoint, 24 * MIB) as disk:
        if disk is None:
            r.saw = "not run: mounting a tmpfs in a mount namespace needs root (unshare -m)"
            return
        prefix, seen = disk
        (seen / "filler").write_bytes(bytes(12 * MIB))
        flags = ("--data-dir", str(mountpoint / "data"), "--fsync", "always", "--no-http")
        broker = start_broker(src, *flags, prefix=prefix)
        acked = _put_each(broker, 100_000, "x" * 1000, batch=50)
        broker.stop()
        os.truncate(seen / "filler", 8 * MIB)
        broker_or_why = _try_start(src, workdir / "row21.log", *flags, prefix=prefix)
        if isinstance(broker_or_why, str):
            r.saw = f"{acked} PUTs, disk full; freed 4 MiB; the restart failed: {broker_or_why}"
            return
        broker = broker_or_why
        more = _put_each(broker, 1000, "x" * 1000, batch=50)
        free = os.statvfs(seen)
        held = _held(broker)
        broker.stop()
    r.saw = (
        f"{acked} PUTs of 1 KB ok, then disk full; freed 4 MiB and restarted: {more} of 1000 "
        f"more PUTs ok, {held} held, {free.f_bavail * free.f_frsize // 1024} KiB left free"
    )


@standalone("22", "LOCK as a symlink; log file modes")
def row_22(r: Row, workdir: Path, src: Path | None) -> None:
    data = workdir / "data22"
    old = os.umask(0o022)
    try:
        broker = start_broker(src, "--data-dir", str(data))
    finally:
        os.umask(old)
    _put_each(broker, 1)
    broker.stop()
    modes = sorted({oct(p.stat().st_mode & 0o777) for p in data.iterdir() if p.is_file()})
    victim = workdir / "victim"
    victim.write_text("precious\n")
    planted = workdir / "data22b"
    planted.mkdir()
    (planted / "LOCK").symlink_to(victim)
    started = _try_start(src, workdir / "row22.log", "--data-dir", str(planted))
    if isinstance(started, str):
        lock = f"refused: {started}"
    else:
        started.stop()
        lock = "started"
    r.saw = (
        f"data dir {oct(data.stat().st_mode & 0o777)}, files {', '.join(modes)}; LOCK a link: "
        f"{lock}; its target now holds {victim.read_text().strip()!r}"
    )


@standalone("23", "log zeroed from the middle of the last segment to its end")
def row_23(r: Row, workdir: Path, src: Path | None) -> None:
    data = workdir / "data23"
    broker = start_broker(src, "--data-dir", str(data))
    acked = _put_each(broker, 2000)
    broker.stop()
    segment = max(data.glob("log-*.wql"))
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.seek(size // 2)
        f.write(bytes(size - size // 2))
    log = workdir / "row23.log"
    again = _try_start(src, log, "--data-dir", str(data))
    if not isinstance(again, str):
        held = _held(again)
        again.stop()
        cut = segment.stat().st_size
        r.saw = (
            f"{acked} PUTs ok; zeroed from byte {size // 2}: started with {held} of them, "
            f"segment truncated in place from {size} to {cut} bytes"
        )
        return
    first = f"start refused: {again}"
    broker = start_broker(src, "--data-dir", str(data), "--recover", log=log)
    held = _held(broker)
    broker.stop()
    aside = [p.name for p in data.iterdir() if ".damaged-" in p.name]
    r.saw = (
        f"{acked} PUTs ok; zeroed from byte {size // 2}: {first}; with --recover: {held} "
        f"back, the rest moved aside into {', '.join(aside)}"
    )


# --------------------------------------------------------------------- soak

#: the rows a soak runs against one broker, one after the other: every row but those
#: that need a broker of their own (a TLS port: 11; no token: 15b; their own flags:
#: 3, 5b; restarts: 21-23)
SOAK_ROWS: tuple[str, ...] = (
    "1",
    "1b",
    "2",
    "3b",
    "4",
    "5",
    "7",
    "8",
    "10",
    "12",
    "14",
    "15",
    "16",
    "20",
    "18",
)  # fmt: skip  (18 last: it locks this address out of AUTH for a while)
#: the soak broker's limits: what its RSS must stay within (with the interpreter's own)
SOAK_FLAGS: tuple[str, ...] = ("--max-memory", "1g", "--max-buffered", "64m")
SOAK_RSS_MAX_MB = 1400  # --max-memory 1g, --max-buffered 64m, the rest


def clean_up(broker: Broker) -> int:
    """DELETE every queue but the bystander's (what a row left), as an operator would:
    a page of names at a time, pipelined. How many went."""
    gone = 0
    with broker.client() as client:
        for _ in range(10_000):  # pages (bounded)
            names = client.call({"op": "QUEUES", "limit": 1000}).get("queues", [])
            names = [n for n in names if n != "bystander"]
            if not names:
                break
            lines = [json.dumps({"op": "DELETE", "queue": n}).encode() + b"\n" for n in names]
            pipeline(client, lines, 256)
            gone += len(names)
    return gone


def _clean_up_into(broker: Broker, figures: dict[str, Any]) -> None:
    figures["queues_deleted"] = clean_up(broker)


def soak(
    src: Path | None,
    scale: float,
    rows: Sequence[str] = SOAK_ROWS,
    nice: int = ATTACKER_NICE,
) -> dict[str, Any]:
    """Every row of ``rows`` against one broker (token, metrics port, ``SOAK_FLAGS``),
    one bystander all along: per row what it saw, the bystander's worst operation
    while it ran and the RSS after it; then the worst of all and the peak RSS. After
    each row, its queues are deleted (``clean_up``: DELETE, in slices), so the next
    row finds room; what the process keeps (its heap, the acked history, the
    collector's frozen objects) stays."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    flags = (*SOAK_FLAGS, "--metrics-port", str(metrics_port))
    broker = start_broker(src, *flags, token=TOKEN)
    broker.metrics_port = metrics_port
    done: list[tuple[Row, float, float, float]] = []  # a row, its start, end, clean-up's end
    load_before = os.getloadavg()[0]
    try:
        base = broker.rss()
        with bystander(broker) as seen:
            for number in rows:
                print(
                    f"... soak row {number}: {ATTACKS[number][0].did}", file=sys.stderr, flush=True
                )
                template, attack = ATTACKS[number]
                r = Row(**{**template.__dict__, "figures": {"src": src}})
                began = time.time()
                as_attacker(nice, functools.partial(attack, broker, r, scale))
                r.figures.pop("src", None)
                r.figures["rss_after_mb"] = round(broker.rss() / MIB)
                ended = time.time()
                if number != rows[-1]:  # (after the last, 18, this address is locked out)
                    # (the harness's load too: niced as well)
                    as_attacker(nice, functools.partial(_clean_up_into, broker, r.figures))
                done.append((r, began, ended, time.time()))
        samples: list[tuple[float, float]] = seen.get("samples", [])

        def worst_ms(since: float, until: float) -> float | None:
            during = [d for at, d in samples if since <= at < until]
            return round(max(during) * 1000, 1) if during else None

        for r, began, ended, cleaned in done:
            r.figures["worst_ms"] = worst_ms(began, ended)
            r.figures["clean_up_worst_ms"] = worst_ms(ended, cleaned)
        return {
            "rows": done,
            "worst_ms": seen.get("worst_ms"),
            "p50_ms": seen.get("p50_ms"),
            "errors": seen.get("errors"),
            "rss_start_mb": round(base / MIB),
            "rss_peak_mb": round(broker.peak_rss / MIB),
            "nice": nice,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
    finally:
        broker.stop()


def print_soak(result: dict[str, Any]) -> None:
    print(
        f"{'row':>4}  {'bystander worst ms':>18}  {'(clean-up)':>10}  {'RSS after MB':>12}  attack"
    )
    for r, *_ in result["rows"]:
        f = r.figures
        after = f.get("clean_up_worst_ms")
        print(
            f"{r.number:>4}  {f.get('worst_ms')!s:>18}  {after!s:>10}  {f['rss_after_mb']:>12}  "
            f"{r.did}: {r.saw}"
        )
    print(
        f"soak: bystander worst {result['worst_ms']} ms, median {result['p50_ms']} ms, "
        f"{result['errors']} errors; RSS {result['rss_start_mb']} MB at start, "
        f"{result['rss_peak_mb']} MB at its peak (limits: {' '.join(SOAK_FLAGS)}); attackers "
        f"at nice +{result['nice']}; load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after"
    )


# ------------------------------------------------------------------ running


def run_row(
    number: str, src: Path | None, scale: float, workdir: Path, nice: int = ATTACKER_NICE
) -> Row:
    if number in STANDALONE:
        template, own = STANDALONE[number]
        r = Row(**template.__dict__)
        own(r, workdir, src)
        return r
    template, attack = ATTACKS[number]
    r = Row(**{**template.__dict__, "figures": {"src": src}})
    flags = list(r.flags)
    if r.needs_cert:
        made = _make_cert(workdir)
        if made is None:
            r.saw = "not run: the openssl CLI is missing"
            return r
        flags += ["--tls-cert", str(made[0]), "--tls-key", str(made[1]), "--max-connections", "100"]
    metrics_port = None
    if number == "20":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            metrics_port = probe.getsockname()[1]
        flags += ["--metrics-port", str(metrics_port)]
    broker = start_broker(src, *flags, token=TOKEN if r.token else None)
    broker.metrics_port = metrics_port
    watching = not r.needs_cert  # the bystander speaks plain TCP
    try:
        base = broker.rss()
        with bystander(broker) if watching else contextlib.nullcontext({}) as seen:
            as_attacker(nice, functools.partial(attack, broker, r, scale))
        r.figures.update(
            worst_ms=seen.get("worst_ms"),
            p50_ms=seen.get("p50_ms"),
            bystander_errors=seen.get("errors"),
            rss_start_mb=round(base / MIB),
            rss_peak_mb=round(broker.peak_rss / MIB),
            rss_end_mb=round(broker.rss() / MIB),
        )
    finally:
        broker.stop()
    r.figures.pop("src", None)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    every = sorted([*ATTACKS, *STANDALONE], key=lambda n: (int(n.rstrip("b")), n))
    parser.add_argument("--rows", default=",".join(every), help="e.g. 8,15,16")
    parser.add_argument("--scale", type=float, default=1.0, help="size of every attack (1.0)")
    parser.add_argument("--src", type=Path, default=None, help="run the broker of this checkout")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    parser.add_argument(
        "--nice",
        type=int,
        default=ATTACKER_NICE,
        help=f"the attackers' CPU priority below the broker's ({ATTACKER_NICE}; 0: the same)",
    )
    parser.add_argument(
        "--soak", action="store_true", help="every row but 3, 5b, 11, 15b, 21-23 against one broker"
    )
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.soak:
        result = soak(args.src, args.scale, nice=args.nice)
        print_soak(result)
        if args.json:
            rows = [{"row": r.number, "saw": r.saw, **r.figures} for r, *_ in result["rows"]]
            print(json.dumps({**result, "rows": rows}))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="wonderq-attack-") as workdir:
        for number in args.rows.split(","):
            did = (ATTACKS.get(number) or STANDALONE[number])[0].did
            print(f"... row {number}: {did}", file=sys.stderr, flush=True)
            rows.append(run_row(number, args.src, args.scale, Path(workdir), args.nice))
    print(f"{'row':>4}  {'bystander worst/p50 ms':>22}  {'RSS start/peak/end MB':>21}  attack")
    for r in rows:
        f = r.figures
        seen = f"{f.get('worst_ms')}/{f.get('p50_ms')}" if f.get("worst_ms") is not None else "-"
        rss = f"{f.get('rss_start_mb')}/{f.get('rss_peak_mb')}/{f.get('rss_end_mb')}"
        if f.get("rss_start_mb") is None:  # a row that ran its own brokers
            rss = "-"
        print(f"{r.number:>4}  {seen:>22}  {rss:>21}  {r.did}: {r.saw}")
    if args.json:
        print(
            json.dumps([{"row": r.number, "did": r.did, "saw": r.saw, **r.figures} for r in rows])
        )


if __name__ == "__main__":
    main()
