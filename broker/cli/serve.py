"""``wonderq serve``: run the broker until SIGINT/SIGTERM.

Owns: turning flags into a ``Config``, running the TCP server and the HTTP API
(``--http-port``, unless ``--no-http``; ``--metrics-port`` serves ``/metrics``
and ``/healthz`` alone on another port, on loopback unless ``--metrics-host``
says otherwise) on uvloop, configuring logs, printing ``listening on HOST:PORT``
then ``http on HOST:PORT`` (``https`` under TLS) when ready, then how to reach it
(``broker/cli/welcome.py``), and exiting 0
after a graceful shutdown of both. Also the process-level hardening: reading the token (flag,
file or ``WONDERQ_TOKEN``), checking ``--data-dir`` (a directory it can write in, made
if missing), loading the TLS certificate, raising the open-files
limit for ``--max-connections``, and a loud warning when a non-loopback address
is served without a token.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import resource
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from broker import __version__, compiled, logs
from broker.backend.base import Backend, StartError
from broker.cli import welcome
from broker.cli.tokens import read_token
from broker.config import MAX_QUEUES_DEFAULT, SETTINGS, TOKEN_ENV, Config, NamedSetting
from broker.durability.replay import DurabilityError
from broker.http import HttpApi
from broker.server import Server, collector
from broker.server.loop import run as run_loop
from broker.tools import ToolsMissing, require_tools

log = logging.getLogger("wonderq.serve")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        description="The protocol on --host:--port (default 127.0.0.1:7878); the HTTP API, "
        "the web console and /metrics on --http-port (default the port + 1). When ready it "
        "prints `listening on HOST:PORT`, then `http on HOST:PORT`, then how to reach it. "
        f"Ctrl-C (SIGINT) or SIGTERM stops it gracefully. {TOKEN_ENV} gives the token instead "
        "of --token (which other users can see in `ps`).",
    )
    for named in SETTINGS:
        _add_setting_flag(p, named)
    p.add_argument(
        "--token-file", help="read the token from this file (surrounding blanks removed)"
    )
    p.add_argument("--tls-cert", help="serve TLS with this PEM certificate chain (needs --tls-key)")
    p.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop")
    p.add_argument("--no-http", action="store_true", help="serve no HTTP API (and no console)")
    p.add_argument(
        "--console-read-only",
        action="store_true",
        help="the web console (at / on the HTTP port) shows no action, and the HTTP API "
        "refuses every action sent by a browser",
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="with --data-dir: start even if the log is damaged, moving the damaged bytes "
        "aside (into <file>.damaged-<offset>) and going on without them",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="also serve /metrics (and /healthz) alone on this port "
        "(it is on the HTTP API's port too)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of --metrics-port (default 127.0.0.1)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default INFO)",
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="text lines, or one JSON object per line (default text)",
    )
    p.set_defaults(run=run)


def _add_setting_flag(p: argparse.ArgumentParser, named: NamedSetting) -> None:
    """``--<flag>`` for one ``Config`` field, its default shown in its help."""
    how = named.setting
    shown = f": {how.unset}" if named.default is None else f" {how.kind.show(named.default)}"
    p.add_argument(
        f"--{how.flag}",
        dest=named.name,
        type=_argument_type(how.kind.parse),
        default=named.default,
        choices=how.choices or None,
        metavar=how.metavar or how.kind.metavar,
        help=f"{how.help} (default{shown})".replace("%", "%%"),
    )


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: int and float keep argparse's "invalid int value: 'x'"; another
    parser's ValueError says what is wrong itself ("not a size: 'x' (e.g. 262144, 256k, 1m)")."""
    if parse in (int, float, str):
        return parse

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


FSYNC_DEFAULT = Config().fsync
_SPARE_FILES = 64  # descriptors beyond one per connection: listener, loop, logs


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A server TLS context from --tls-cert/--tls-key, or None; ValueError if bad."""
    if args.tls_cert is None and args.tls_key is None:
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return context


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def check_data_dir(path: str) -> None:
    """Make ``--data-dir`` if it is missing; ValueError naming what is wrong with it: a file
    where a directory should be, a directory that cannot be made, or one this user cannot
    write in."""
    where = f"--data-dir {path}"
    parts = os.path.normpath(path).split(os.sep)
    for n in range(1, len(parts) + 1):
        part = os.sep.join(parts[:n]) or os.sep
        if os.path.exists(part) and not os.path.isdir(part):
            what = "" if n == len(parts) else f": {part}"
            raise ValueError(f"{where}{what} is a file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{where} cannot be made: {exc.strerror}") from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(
            f"{where} is not writable by this user (uid {os.getuid()}): {exc.strerror}"
        ) from None


def config_from_args(args: argparse.Namespace) -> Config:
    """The ``Config`` of the generated flags, the token from ``read_token``; ValueError if bad."""
    values = {named.name: getattr(args, named.name) for named in SETTINGS}
    return Config(
        **{
            **values,
            "token": read_token(args)[0],
            "console_read_only": args.console_read_only,
            "recover": args.recover,
        }
    )


def exposure_warnings(addresses: list[str], config: Config, tls: bool) -> list[str]:
    """Loud warnings for a broker reachable beyond this machine without protection."""
    exposed = [a for a in addresses if not _is_loopback(a)]
    if not exposed:
        return []
    where = ", ".join(exposed)
    if config.token is None:
        return [
            f"WARNING: listening on {where}, which is not loopback, WITHOUT A TOKEN: anyone who "
            f"can reach it can read, delete and inject messages. Set --token-file or {TOKEN_ENV}."
        ]
    if not tls:
        return [
            f"WARNING: listening on {where} without TLS: the token and every message cross "
            "the network in clear text. Set --tls-cert and --tls-key."
        ]
    return []


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _loggable(config: Config) -> dict[str, object]:
    """The configuration for the startup log line, with the token masked."""
    return {**asdict(config), "token": None if config.token is None else "(set)"}


#: test hook: kill the process (SIGKILL) after this compaction step (see compaction.py)
CRASH_ENV = "WONDERQ_COMPACTION_CRASH_AT"


def make_backend(config: Config) -> Backend | None:
    """The backend ``config`` asks for: Redis with a Redis ``--backend`` URL, the durable
    one with ``--data-dir``; None means the default (in memory). ValueError if the flags
    do not go together, ``ToolsMissing`` if the Redis extra is not installed."""
    if config.backend != "memory":
        return _redis_backend(config)
    if config.redis_password_file is not None or config.node_id is not None:
        raise ValueError("--redis-password-file and --node-id need a Redis --backend URL")
    if config.data_dir is None:
        return None
    from broker.durability.backend import DurableBackend

    return DurableBackend(config, crash_at=os.environ.get(CRASH_ENV))


def _redis_backend(config: Config) -> Backend:
    from broker.backend.redis import target

    if not target.is_redis_url(config.backend):
        raise ValueError(
            f"--backend must be memory or a Redis URL (redis://HOST:PORT[/DB], rediss://..., "
            f"redis-cluster://HOST:PORT[,HOST:PORT...]), not {config.backend!r}"
        )
    if config.data_dir is not None:
        raise ValueError(
            "--data-dir does not apply to a Redis backend: Redis keeps the state "
            "(configure its appendonly and appendfsync instead)"
        )
    if config.fsync != FSYNC_DEFAULT:
        raise ValueError(
            "--fsync does not apply to a Redis backend: durability is Redis's "
            "(its appendfsync setting)"
        )
    if config.max_memory is not None:
        raise ValueError(
            "--max-memory does not apply to a Redis backend: set Redis's maxmemory "
            "(with maxmemory-policy noeviction); a full Redis answers memory_limit"
        )
    if config.max_queues != MAX_QUEUES_DEFAULT:
        raise ValueError(
            "--max-queues does not apply to a Redis backend: its queues live in Redis, "
            "bounded by Redis's maxmemory (an idle queue's keys expire there)"
        )
    try:
        require_tools("--backend " + config.backend.split("://")[0] + "://", "redis", "hiredis")
    except ToolsMissing:
        raise ToolsMissing(target.INSTALL_HINT) from None
    from broker.backend.redis.backend import RedisBackend

    where = target.parse(config.backend, config.redis_password_file)
    return RedisBackend(config, where, node_id=config.node_id)


async def serve(
    config: Config,
    backend: Backend | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    tls: ssl.SSLContext | None = None,
    http: bool = True,
) -> None:
    from broker.http.metrics import histograms_of
    from broker.http.routes import METRICS_ROUTES

    log.info(
        "wonderq %s starting: %s",
        __version__,
        " ".join(f"{k}={v}" for k, v in _loggable(config).items()),
        extra={"event": "startup", "version": __version__, "config": _loggable(config)},
    )
    hot_path = compiled.hot_path()
    log.info("hot path: %s", hot_path, extra={"event": "hot_path", "hot_path": hot_path})
    if backend is None:
        backend = make_backend(config)
    server = Server(config, backend, ssl=tls, measure_latency=metrics_port is not None)
    api = HttpApi(
        config,
        server.backend,
        ssl=tls,
        histograms=lambda: histograms_of(server.backend, server.batch_latency),
        throttle=server.auth_throttle,
    )
    server.add_frontend(api)
    try:
        # listening before the backend opens its data: /healthz says 503 until it is ready
        http_at = await _listen(api, config.host, config.http_listen_port) if http else None
        if metrics_port is not None:
            try:
                await api.listen(metrics_host, metrics_port, METRICS_ROUTES)
            except OSError as exc:
                raise OSError(exc.errno, f"metrics port {metrics_port}: {exc.strerror}") from exc
        with collector.paused():  # replaying a log builds millions of objects, none garbage
            await server.start()
        api.ready()
        frozen = collector.freeze_survivors()
        log.debug("froze %d startup objects out of the collector's reach", frozen)
        collector.space_young_collections()
        loop = asyncio.get_running_loop()
        collector.freeze_after_slow_collections(loop.call_soon)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop_on, server, sig)
        for warning in exposure_warnings(server.addresses, config, tls is not None):
            print(warning, file=sys.stderr, flush=True)
        print(f"listening on {server.host}:{server.port}", flush=True)
        if http_at is not None:
            print(f"{api.scheme} on {http_at[0]}:{http_at[1]}", flush=True)
        print(_welcome(server, config, api.scheme, http_at, tls is not None), flush=True)
        await server.serve_until_stopped()
    finally:
        await server.close()
        await api.close()  # when the server never started (its close closes the API first)


def _welcome(
    server: Server, config: Config, scheme: str, http_at: tuple[str, int] | None, tls: bool
) -> str:
    console = None
    if http_at is not None:
        host = "127.0.0.1" if http_at[0] in welcome.EVERY_INTERFACE else http_at[0]
        console = f"{scheme}://{host}:{http_at[1]}/"
    at = welcome.Listening(server.host, server.port, console, config.token is not None, tls)
    return "\n".join(welcome.how_to_reach(welcome.command_name(sys.argv[0]), at))


async def _listen(api: HttpApi, host: str, port: int) -> tuple[str, int]:
    try:
        return await api.listen(host, port)
    except OSError as exc:
        raise OSError(exc.errno, f"http port {port}: {exc.strerror}") from exc


def _stop_on(server: Server, sig: signal.Signals) -> None:
    log.info("%s received: shutting down", sig.name, extra={"event": "signal", "signal": sig.name})
    server.request_stop()


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    try:
        config = config_from_args(args)
        tls = tls_context(args)
        if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
            raise ValueError("metrics-port must be 0-65535")
        backend = make_backend(config)  # first: a Redis backend refuses --data-dir
        if config.data_dir is not None:
            check_data_dir(config.data_dir)
    except (ValueError, ToolsMissing) as exc:
        print(f"wonderq serve: {exc}", file=sys.stderr)
        return 2
    wanted_files = config.max_connections + _SPARE_FILES
    open_files = raise_open_files_limit(wanted_files)
    if open_files < wanted_files:
        print(
            f"wonderq serve: warning: the open-files limit is {open_files} (hard limit reached), "
            f"below max-connections ({config.max_connections}) + {_SPARE_FILES}: connections "
            "past it cannot be accepted",
            file=sys.stderr,
        )
    try:
        run_loop(
            serve(
                config, backend, args.metrics_port, args.metrics_host, tls, http=not args.no_http
            ),
            use_uvloop=not args.no_uvloop,
        )
    except (DurabilityError, StartError) as exc:
        print(f"wonderq serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wonderq serve: cannot listen on {config.host}: {exc}", file=sys.stderr)
        return 1
    return 0
