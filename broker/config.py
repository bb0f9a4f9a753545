"""Server and engine settings: one frozen dataclass, no IO.

Owns: every tunable limit with its default and, on the same line, how it is
set and checked (a ``Setting``): its flag name, which error messages use
(``max-batch must be >= 1``), its help line, how its text is parsed and shown,
and its bounds. ``Config.__post_init__`` checks every bound; ``wonderq serve``
generates one flag per setting (``SETTINGS``). Adding a setting is adding one
field here. The engine, codec and server read the values.
Must never: read files, the environment or the clock, or know argparse.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

KIB = 1024
MIB = 1024 * KIB
TOKEN_MAX = 4096  # the longest token AUTH accepts (protocol/requests.py says the same)
TOKEN_MIN = 16  # a shorter token can be guessed
#: how to make a good token, for the error that refuses a short one
TOKEN_HOW = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(24))"'
TOKEN_ENV = "WONDERQ_TOKEN"  # where serve and the client commands read a token from
FSYNC_POLICIES = ("always", "everysec", "no")
HTTP_PORT = 7879  # the HTTP API's default port
MAX_QUEUES_DEFAULT = 100_000  # (serve refuses another value with a Redis backend)
DEDUP_WINDOW_MAX_S = 86_400.0  # the longest dedup window (protocol/requests.py says the same)
NODE_ID_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:."
)

_SIZE_UNITS: Final = {"k": KIB, "m": MIB, "g": 1024 * MIB}


def parse_size(text: str) -> int:
    """A byte size: 1048576, 256k, 1m, 2g, 1.5MiB (powers of 1024); ValueError if not one."""
    clean = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if clean and clean[-1] in _SIZE_UNITS:
            return int(float(clean[:-1]) * _SIZE_UNITS[clean[-1]])
        return int(clean)
    except ValueError:
        raise ValueError(f"not a size: {clean!r} (e.g. 262144, 256k, 1m)") from None


def format_size(size: int) -> str:
    """``size`` as ``parse_size`` reads it, in the largest unit that divides it (64m, 1000)."""
    for suffix, unit in reversed(_SIZE_UNITS.items()):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _seconds(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class Kind:
    """How a value of a setting is written: parsed from a flag, shown in ``--help``."""

    parse: Callable[[str], Any]  # raises ValueError on bad text
    show: Callable[[Any], str]
    metavar: str | None  # None: the flag's destination in capitals (HOST, DATA_DIR)


INTEGER: Final = Kind(int, str, "N")
SECONDS: Final = Kind(float, _seconds, "SECONDS")
BYTES: Final = Kind(parse_size, format_size, "SIZE")
TEXT: Final = Kind(str, str, None)


@dataclass(frozen=True, slots=True)
class Bound:
    """What a value must be: ``holds(value)``; the error says ``<flag> must be <text>``."""

    holds: Callable[[Any], bool]
    text: str


def at_least(low: int, unit: str = "") -> Bound:
    return Bound(lambda value: value >= low, f">= {low} {unit}".rstrip())


def above(low: float, unit: str = "") -> Bound:
    return Bound(lambda value: value > low, f"> {low:g} {unit}".rstrip())


def between(low: int, high: int) -> Bound:
    return Bound(lambda value: low <= value <= high, f"{low}-{high}")


def length_between(low: int, high: int, unit: str, why: str = "") -> Bound:
    text = f"{low}-{high} {unit}" + (f" ({why})" if why else "")
    return Bound(lambda value: low <= len(value) <= high, text)


@dataclass(frozen=True, slots=True)
class Setting:
    """How one ``Config`` field is named, documented, parsed and bounded."""

    flag: str  # "max-batch": the flag --max-batch, and the name in error messages
    help: str  # one line; --help adds the default
    kind: Kind = INTEGER
    bound: Bound | None = None
    choices: tuple[str, ...] = ()  # when set, the only values allowed
    unset: str = ""  # what a default of None means, for --help ("unlimited")
    metavar: str | None = None  # instead of the kind's

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, naming the flag; None if it is."""
        if self.choices and value not in self.choices:
            *most, last = self.choices
            return f"{self.flag} must be {', '.join(most)} or {last}"
        if self.bound is not None and not self.bound.holds(value):
            return f"{self.flag} must be {self.bound.text}"
        return None


_T = TypeVar("_T")


def setting(
    default: _T,
    flag: str,
    help: str,
    *,
    kind: Kind = INTEGER,
    bound: Bound | None = None,
    choices: tuple[str, ...] = (),
    unset: str = "",
    metavar: str | None = None,
    secret: bool = False,
) -> _T:
    """A ``Config`` field with its ``Setting``; ``secret`` keeps the value out of ``repr``."""
    if default is None and not unset:
        raise TypeError(f"setting {flag}: a default of None needs `unset` to say what it means")
    how = Setting(flag, help, kind, bound, choices, unset, metavar)
    return field(default=default, repr=not secret, metadata={"setting": how})


@dataclass(frozen=True, slots=True)
class Config:
    host: str = setting("127.0.0.1", "host", "address to bind", kind=TEXT)
    port: int = setting(
        7878,
        "port",
        "port to listen on; 0 picks a free one",
        bound=between(0, 65535),
        metavar="PORT",
    )
    http_port: int | None = setting(
        None,
        "http-port",
        "port of the HTTP API, on --host; 0 picks a free one (serve --no-http: none)",
        bound=between(0, 65535),
        unset=f"--port + 1 ({HTTP_PORT}), or a free one when --port is 0",
        metavar="PORT",
    )
    http_hosts: str = setting(
        "",
        "http-hosts",
        "host names a browser may use to reach the HTTP API and console, comma separated, "
        "besides IP addresses, localhost and --host (a guard against DNS rebinding)",
        kind=TEXT,
        metavar="NAMES",
    )
    metrics_queues: int = setting(
        50,
        "metrics-queues",
        "queues /metrics gives series of their own: the deepest (totals cover all)",
        bound=at_least(0),
    )
    # engine
    lease_s: float = setting(
        30.0, "lease", "default lease in seconds", kind=SECONDS, bound=above(0, "seconds")
    )
    max_attempts: int = setting(
        5, "max-attempts", "deliveries before dead-lettering", bound=at_least(1)
    )
    max_body: int = setting(
        256 * KIB,
        "max-body",
        "largest message body in bytes",
        kind=BYTES,
        bound=at_least(1, "byte"),
    )
    max_queue_length: int | None = setting(
        None, "max-queue-length", "messages a queue may hold", bound=at_least(1), unset="unlimited"
    )
    max_queues: int = setting(
        MAX_QUEUES_DEFAULT,
        "max-queues",
        "queues held at once; a PUT, CONFIG or PAUSE that would make one more gets "
        "memory_limit (an empty, idle queue with default settings is forgotten)",
        bound=at_least(1),
    )
    max_batch: int = setting(
        1000, "max-batch", "messages in one batch PUT or ids in one ACK", bound=at_least(1)
    )
    max_get: int = setting(1000, "max-get", "largest `max` of one GET", bound=at_least(1))
    max_waiting: int = setting(
        1000,
        "max-waiting",
        "waiting GETs one connection may have at once; a GET with `wait` past it gets bad_request",
        bound=at_least(1),
    )
    max_memory: int | None = setting(
        None,
        "max-memory",
        "bytes the broker may hold before PUT gets memory_limit: message bodies, and an "
        "estimate of what it keeps with them (per message, key, delay, lease, waiting GET, "
        "acked id, queue and dedup id)",
        kind=BYTES,
        bound=at_least(1, "byte"),
        unset="unlimited",
    )
    acked_history: int = setting(
        100_000,
        "acked-history",
        "acked ids INFO remembers (in all, the oldest go first; with a Redis backend, per queue)",
        bound=at_least(0),
    )
    dedup_window_s: float = setting(
        300.0,
        "dedup-window",
        "seconds a PUT's dedup id is remembered (a queue's dedup_window overrides it)",
        kind=SECONDS,
        bound=Bound(lambda value: 0 < value <= DEDUP_WINDOW_MAX_S, "> 0 and <= 86400 seconds"),
    )
    max_dedup_ids: int = setting(
        1_000_000,
        "max-dedup-ids",
        "dedup ids remembered (in all; with a Redis backend, per queue); the oldest go first",
        bound=at_least(1),
    )
    # codec / connection
    max_line: int = setting(
        1 * MIB,
        "max-line",
        "longest request line in bytes",
        kind=BYTES,
        bound=at_least(64, "bytes"),
    )
    max_buffered: int = setting(
        256 * MIB,
        "max-buffered",
        "bytes of unfinished request lines held over all connections; a connection "
        "whose line would pass it is closed",
        kind=BYTES,
        bound=at_least(64, "bytes"),
    )
    # (not settable from the command line: no Setting)
    #: an empty queue with default settings, no leases and no waiting GETs is forgotten
    #: once it stayed so this long (in memory: between one and two times this)
    forget_after_s: float = 60.0
    #: longest line before a connection has authenticated (with a token): an AUTH line fits
    max_line_unauthenticated: int = 8 * KIB
    #: `serve --console-read-only`: the web console shows no action, and the HTTP API
    #: refuses every action a browser sends (scripts and clients are unaffected)
    console_read_only: bool = False
    write_high_water: int = 1 * MIB
    write_low_water: int = 256 * KIB
    max_reply_bytes: int = 1 * MIB
    # security and connection limits (server)
    token: str | None = setting(
        None,
        "token",
        f"require AUTH with this token on every connection; also read from --token-file or {TOKEN_ENV}",
        kind=TEXT,
        bound=length_between(
            TOKEN_MIN, TOKEN_MAX, "characters", f"a shorter one can be guessed; {TOKEN_HOW}"
        ),
        unset="none",
        secret=True,
    )
    max_connections: int = setting(
        10_000,
        "max-connections",
        "open connections; more are refused with an error line",
        bound=at_least(1),
    )
    idle_timeout_s: float = setting(
        600.0,
        "idle-timeout",
        "close a connection after this many seconds without a complete request, "
        "unless it holds a lease or a waiting GET; 0 never closes one",
        kind=SECONDS,
        bound=at_least(0),
    )
    # durability (off unless data_dir is set)
    data_dir: str | None = setting(
        None,
        "data-dir",
        "keep messages in an append-only log in this directory",
        kind=TEXT,
        unset="in memory only",
    )
    fsync: str = setting(
        "everysec",
        "fsync",
        "with --data-dir: always (reply after fsync), everysec or no",
        kind=TEXT,
        choices=FSYNC_POLICIES,
    )
    # where queue state lives (the memory/durable backend unless a Redis URL is given)
    backend: str = setting(
        "memory",
        "backend",
        "memory, or the URL of the Redis all nodes share: redis://HOST:PORT[/DB], rediss:// "
        "with TLS, or a Redis Cluster's (docs/scale-out.md; needs the 'redis' extra)",
        kind=TEXT,
        metavar="URL",
    )
    redis_password_file: str | None = setting(
        None,
        "redis-password-file",
        "with a Redis backend: read Redis's password from this file",
        kind=TEXT,
        unset="none",
        metavar="PATH",
    )
    node_id: str | None = setting(
        None,
        "node-id",
        "with a Redis backend: this node's name, unique among the nodes",
        kind=TEXT,
        bound=Bound(
            lambda value: 0 < len(value) <= 64 and NODE_ID_CHARS.issuperset(value),
            "1-64 characters from A-Z a-z 0-9 _ - : .",
        ),
        unset="host, port and a random suffix",
    )
    compact_min_bytes: int = setting(
        64 * MIB,
        "compact-min",
        "with --data-dir: compact once the log is this big and mostly dead",
        kind=BYTES,
        bound=at_least(1, "byte"),
    )
    #: (``serve --recover``, a switch) a damaged log does not stop the start: its damaged
    #: bytes are moved aside and the start goes on without them (durability/store.py)
    recover: bool = False

    @property
    def http_listen_port(self) -> int:
        """The HTTP API's port: ``http_port``, or by default the TCP port + 1 (7879 for the
        default 7878; a free one with ``port`` 0), so two brokers on one machine never
        take the same HTTP port by default."""
        if self.http_port is not None:
            return self.http_port
        if self.port == 0:
            return 0
        return self.port + 1 if self.port < 65535 else self.port - 1

    def __post_init__(self) -> None:
        for named in SETTINGS:
            value = getattr(self, named.name)
            if value is None and named.default is None:
                continue  # unset: unlimited, never, none
            problem = named.setting.problem(value)
            if problem is not None:
                raise ValueError(problem)
        if self.recover and self.data_dir is None:
            raise ValueError("recover needs --data-dir (it repairs a durable log)")
        if self.token is not None and auth_line_bytes(self.token) > self.max_line_unauthenticated:
            raise ValueError(
                f"token must fit in an AUTH line of {self.max_line_unauthenticated} bytes "
                f"(the longest line before AUTH); this one needs {auth_line_bytes(self.token)}"
            )


def auth_line_bytes(token: str) -> int:
    """The length of ``{"op":"AUTH","token":T,"rid":R}`` with the longest string rid."""
    rid = 64 * 6 + 2  # 64 characters, each escaped as \uXXXX, in quotes
    return len(b'{"op":"AUTH","token":,"rid":}') + len(json.dumps(token).encode()) + rid


@dataclass(frozen=True, slots=True)
class NamedSetting:
    """A ``Setting`` with its ``Config`` field's name and default."""

    name: str
    default: Any
    setting: Setting


#: every field that has a Setting, in field order (what `wonderq serve` makes flags of)
SETTINGS: Final = tuple(
    NamedSetting(f.name, f.default, f.metadata["setting"])
    for f in fields(Config)
    if "setting" in f.metadata
)
