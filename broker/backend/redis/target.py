"""Where the Redis backend keeps its state: the ``--backend`` URL, and clients to it.

Owns: parsing ``redis://[:PASSWORD@]HOST:PORT[/DB]``, ``rediss://`` (TLS) and
``redis-cluster://HOST:PORT[,HOST:PORT...]`` (``rediss-cluster://`` with TLS),
reading ``--redis-password-file``, and building a redis-py asyncio client to one
server with the node's timeouts (a node never waits on Redis longer than
``timeout_s``); ``shards.py`` routes between the servers of a cluster.
Must never: import redis-py at module level (the extra may be missing: ``serve``
says what to install), or log a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

SCHEMES: Final = ("redis", "rediss", "redis-cluster", "rediss-cluster")
INSTALL_HINT: Final = (
    "the Redis backend needs the 'redis' extra: pip install 'wonderq[redis]' "
    "(redis-py with hiredis)"
)


@dataclass(frozen=True, slots=True)
class Target:
    hosts: tuple[tuple[str, int], ...]
    db: int = 0
    tls: bool = False
    cluster: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The URL without its password (for logs and STATS)."""
        scheme = ("rediss" if self.tls else "redis") + ("-cluster" if self.cluster else "")
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        return f"{scheme}://{hosts}" + ("" if self.cluster or not self.db else f"/{self.db}")


def is_redis_url(text: str) -> bool:
    return text.split("://", 1)[0] in SCHEMES and "://" in text


def parse(url: str, password_file: str | None = None) -> Target:
    """A ``Target`` from a ``--backend`` URL; ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"backend must be memory or a URL of {', '.join(SCHEMES)}: {url!r}")
    cluster = scheme.endswith("-cluster")
    parts = urlsplit(f"redis://{rest}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    hosts = tuple(_host_port(h) for h in parts.netloc.rpartition("@")[2].split(","))
    if not cluster and len(hosts) != 1:
        raise ValueError("a redis:// URL names one host; use redis-cluster:// for several")
    db = 0
    path = parts.path.strip("/")
    if path:
        if cluster:
            raise ValueError("a Redis Cluster has no database number: drop the /DB")
        if not path.isdigit():
            raise ValueError(f"the database in {url!r} must be a number (redis://HOST:PORT/DB)")
        db = int(path)
    if password_file is not None:
        if password is not None:
            raise ValueError("give the password in the URL or --redis-password-file, not both")
        password = _read_password(password_file)
    return Target(hosts, db, scheme.startswith("rediss"), cluster, username, password)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT in the backend URL, got {text!r}")
    return host.strip("[]"), int(port)


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read --redis-password-file: {exc}") from None
    if not password:
        raise ValueError("--redis-password-file is empty")
    return password


def plain_client(host: str, port: int, target: Target, timeout_s: float) -> Any:
    """A client to one server of ``target``.

    It never retries by itself: a call the client resent after a broken connection
    could apply twice (an FCALL is no idempotent GET), and a pub/sub link it kept
    reconnecting to a dead server (with backoff) hid the outage from the node, which
    moves to another server. It has no ``socket_timeout``: with one, redis-py sends
    every command under ``asyncio.wait_for``, which on Python 3.11 swallows a cancel
    that lands as the send completes (seen 1162 times in 3000 under uvloop); every
    call of the node has its own ``asyncio.timeout`` instead. Connecting is bounded
    by ``timeout_s``."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis(
        retry=Retry(NoBackoff(), 0),
        host=host,
        port=port,
        db=target.db,
        username=target.username,
        password=target.password,
        socket_timeout=None,  # (redis-py would take 5 s: see above)
        socket_connect_timeout=timeout_s,
        ssl=target.tls,
    )
