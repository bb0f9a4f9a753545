"""A Redis Cluster on loopback: 3 masters and 3 replicas, started and stopped by PID.

Owns: starting six ``redis-server --cluster-enabled yes`` on free ports (each
cluster bus on another free port, ``--cluster-port``, so no port + 10000 must
be free; ``cluster-require-full-coverage no`` as the README asks: the other
masters keep serving while one fails over), joining them with ``redis-cli --cluster create ... --cluster-replicas
1 --cluster-yes``, waiting (bounded) until every server says
``cluster_state:ok`` and every replica synced (``repl-diskless-sync-delay 0``:
Redis would wait 5 s first, and a replica that never synced cannot take over), telling masters from replicas and which master serves a
key, killing one server (SIGKILL, for failover tests), and stopping them all by
the PIDs it started. The bench runs its cluster rows on it; the tests' session
fixture is one too.
Must never: bind anything but 127.0.0.1, leave a server running after
``stop()``, or wait without a bound.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from broker.bench import resp
from broker.bench.procs import free_port

START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
#: how long a master may be silent before a replica is elected (Redis's default: 15 s)
NODE_TIMEOUT_MS: Final = 1000


class ClusterError(Exception):
    """The cluster could not be started or did not become ok in time."""


class Server:
    """One redis-server of the cluster."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)  # a frozen one must run to die
                self.proc.kill()
        self.proc.wait(STOP_TIMEOUT_S)


class LocalCluster:
    def __init__(
        self,
        workdir: Path | None = None,
        masters: int = 3,
        node_timeout_ms: int = NODE_TIMEOUT_MS,
        extra: tuple[str, ...] = (),
    ) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise ClusterError("a Redis Cluster needs redis-server and redis-cli on PATH")
        self.binary, self.cli = binary, cli
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="wonderq-cluster-"))
        self.size = 2 * masters
        self.node_timeout_ms = node_timeout_ms
        self.extra = extra
        self.servers: list[Server] = []

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        """The ``--backend`` URL naming every server (any may answer the first lookup)."""
        return "redis-cluster://" + ",".join(f"{resp.HOST}:{p}" for p in self.ports)

    def start(self) -> LocalCluster:
        try:
            for i in range(self.size):
                self.servers.append(self._start_one(i))
            hosts = [f"{resp.HOST}:{p}" for p in self.ports]
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *hosts,
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT_S,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_one(self, i: int) -> Server:
        port = free_port()
        workdir = self.workdir / f"n{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind", resp.HOST,
            "--port", str(port),
            "--cluster-enabled", "yes",
            "--cluster-port", str(free_port()),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "no",
            "--repl-diskless-sync-delay", "0",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server(proc, port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if resp.command(port, "PING", timeout_s=0.5) == "PONG":
                    return server
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise ClusterError(f"redis-server on port {port} did not start")
            time.sleep(0.02)

    def wait_ok(self, timeout_s: float = START_TIMEOUT_S, replicas: bool = True) -> None:
        """Until every live server says ``cluster_state:ok``, as many masters serve slots
        as the cluster was made with, and (``replicas``) every replica has synced with
        its master: one that never did cannot take over (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = [self.state(s.port) for s in self.servers if s.alive]
            if (
                all(st == "ok" for st in states)
                and len(self.masters()) == self.size // 2
                and (not replicas or self._replicas_synced())
            ):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"the cluster is not ok after {timeout_s:g} s: {states}")
            time.sleep(0.05)

    def _replicas_synced(self) -> bool:
        for s in self.servers:
            if not s.alive:
                continue
            try:
                fields = resp.info(s.port, "replication")
            except (OSError, resp.RespError):
                return False
            if fields.get("role") == "slave" and fields.get("master_link_status") != "up":
                return False
        return True

    def state(self, port: int) -> str:
        try:
            return resp.info(port, "cluster-info").get("cluster_state", "?")
        except (OSError, resp.RespError):
            return "down"

    def masters(self) -> list[int]:
        """The ports of the live masters that serve slots."""
        out = []
        for s in self.servers:
            if not s.alive:
                continue
            try:
                fields = resp.info(s.port, "replication")
            except (OSError, resp.RespError):
                continue
            if fields.get("role") == "master" and self._serves_slots(s.port):
                out.append(s.port)
        return out

    def _serves_slots(self, port: int) -> bool:
        myself = str(resp.command(port, "CLUSTER", "MYID"))
        for line in str(resp.command(port, "CLUSTER", "NODES")).splitlines():
            fields = line.split()
            if fields and fields[0] == myself:
                return len(fields) > 8  # slot ranges follow the 8 fixed fields
        return False

    def master_of(self, key: str) -> int:
        """The port of the live master that serves ``key``'s slot."""
        for port in self.masters():
            try:
                resp.command(port, "EXISTS", key)  # answered here, or MOVED elsewhere
            except resp.RespError:
                continue
            return port
        raise ClusterError(f"no live master serves {key!r}")

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (a failover test's fault)."""
        for s in self.servers:
            if s.port == port:
                s.kill()
                return
        raise KeyError(port)

    def stop(self) -> None:
        for s in self.servers:
            s.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
