"""One-shot subcommands for a shell: put, get, info, stats, peek, purge.

Owns: turning one command line into one or two client calls and printing the
result: JSON for ``put``/``get``/``purge`` (one line per message for ``get``),
readable tables for ``info``, ``stats`` and ``peek`` (rich, from the ``tools``
extra) unless ``--json``. ``stats --json`` prints the broker's STATS reply as
it came, unknown fields included. Uses the bundled blocking client, so it
speaks to any WonderQ broker.
Must never: import the server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

import wonderq
from broker.config import TOKEN_ENV
from broker.protocol.requests import PEEK_LIMIT_DEFAULT, PEEK_LIMIT_MAX
from broker.tools import ToolsMissing, require_tools
from wonderq import commands
from wonderq.sync import SyncConnection

_HOST, _PORT = "127.0.0.1", 7878


def _connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=_HOST, help=f"broker address (default {_HOST})")
    p.add_argument("--port", type=int, default=_PORT, help=f"broker port (default {_PORT})")


def _body(text: str) -> Any:
    """JSON if the text parses as JSON, else the text as a string (like the shorthand)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def _print(obj: Any) -> None:
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("put", description="Put one message.")
    p.add_argument("queue")
    p.add_argument("body", help="message body: JSON if it parses, else a string")
    p.add_argument("--key", help="per-key ordering and mutual exclusion")
    p.add_argument("--delay", type=float, help="seconds before the message is deliverable")
    p.add_argument("--priority", type=int, help="lower is delivered first (default 0)")
    p.add_argument("--max-attempts", type=int, help="deliveries before dead-lettering")
    _connection_flags(p)
    p.set_defaults(run=_put)

    p = sub.add_parser(
        "get",
        description=(
            "Lease messages and print one JSON line per message. Without --ack the "
            "lease ends when this command exits (its connection closes), so the "
            "messages go back to the queue and count one attempt each; with --ack "
            "they are deleted."
        ),
    )
    p.add_argument("queue")
    p.add_argument("--max", type=int, default=1, help="messages to lease (default 1)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for a message")
    p.add_argument("--ack", action="store_true", help="acknowledge (delete) what was received")
    _connection_flags(p)
    p.set_defaults(run=_get)

    p = sub.add_parser(
        "info",
        description="Show one message without changing it (a table, or --json).",
    )
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the message as JSON")
    _connection_flags(p)
    p.set_defaults(run=_info)

    p = sub.add_parser(
        "stats",
        description=(
            "Show the server's figures and one row per queue (<queue>.dead is folded "
            "into its queue's dead column). --json prints the STATS reply as it came."
        ),
    )
    p.add_argument("queue", nargs="?", help="only this queue")
    p.add_argument("--json", action="store_true", help="print the raw STATS reply")
    p.add_argument(
        "--rates",
        action="store_true",
        help="take a second sample one second later and show put/s and ack/s",
    )
    p.add_argument("--connections", action="store_true", help="also list the open connections")
    _connection_flags(p)
    p.set_defaults(run=_stats)

    p = sub.add_parser(
        "peek",
        description=(
            "List messages of a queue without leasing or changing them: id, state, "
            "attempts, key, age, lease holder and time left, and the body (cut to fit)."
        ),
    )
    p.add_argument("queue")
    p.add_argument(
        "--state",
        choices=("ready", "delayed", "leased", "dead"),
        help="only messages in this state (dead: those of <queue>.dead); default all",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=PEEK_LIMIT_DEFAULT,
        help=f"at most this many (1-{PEEK_LIMIT_MAX}, default {PEEK_LIMIT_DEFAULT})",
    )
    p.add_argument("--json", action="store_true", help="print the PEEK reply as JSON")
    _connection_flags(p)
    p.set_defaults(run=_peek)

    p = sub.add_parser("purge")
    p.add_argument("queue")
    _connection_flags(p)
    p.set_defaults(run=_purge)


def token_from_env() -> str | None:
    """The broker's token for the client commands: ``WONDERQ_TOKEN`` (unset or empty: none)."""
    return os.environ.get(TOKEN_ENV) or None


def open_raw(host: str, port: int, timeout_s: float) -> SyncConnection:
    """A bare connection, authenticated with ``token_from_env()`` if there is one."""
    conn = SyncConnection.open(host, port, request_timeout=timeout_s, connect_timeout=timeout_s)
    token = token_from_env()
    if token is not None:
        try:
            conn.call(commands.auth(token))
        except BaseException:
            conn.close()
            raise
    return conn


def _client(args: argparse.Namespace) -> wonderq.Client:
    return wonderq.Client(args.host, args.port, token=token_from_env())


def _guard(args: argparse.Namespace, action: Any) -> int:
    def run() -> None:
        with _client(args) as client:
            action(client)

    return _reporting(args, run)


def _reporting(args: argparse.Namespace, run: Callable[[], None]) -> int:
    """Run ``run``; print a client error as one line on stderr and return 1."""
    try:
        run()
    except wonderq.ConnectionLost as exc:
        print(
            f"wonderq {args.command}: cannot reach {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    except wonderq.WonderQError as exc:
        print(f"wonderq {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _put(args: argparse.Namespace) -> int:
    def action(client: wonderq.Client) -> None:
        print(
            client.put(
                args.queue,
                _body(args.body),
                key=args.key,
                delay=args.delay,
                priority=args.priority,
                max_attempts=args.max_attempts,
            )
        )

    return _guard(args, action)


def _get(args: argparse.Namespace) -> int:
    def action(client: wonderq.Client) -> None:
        msgs = client.get(args.queue, max=args.max, wait=args.wait)
        for msg in msgs:
            out = {"id": msg.id, "queue": msg.queue, "body": msg.body, "attempts": msg.attempts}
            if msg.key is not None:
                out["key"] = msg.key
            _print(out)
        if args.ack and msgs:
            client.ack_many([m.id for m in msgs])

    return _guard(args, action)


def _tables(args: argparse.Namespace) -> bool:
    """True if a table is wanted and rich is installed; else print why not and return False."""
    try:
        require_tools(f"wonderq {args.command} (without --json)", "rich")
    except ToolsMissing as exc:
        print(f"wonderq {args.command}: {exc}", file=sys.stderr)
        return False
    return True


def _show(renderable: Any) -> None:
    from rich.console import Console

    Console(highlight=False).print(renderable)


def _raw(args: argparse.Namespace, action: Callable[[SyncConnection], None]) -> int:
    """Run ``action`` on a bare connection: replies come back as dicts, unknown fields kept."""

    def run() -> None:
        conn = open_raw(args.host, args.port, 30.0)
        try:
            action(conn)
        finally:
            conn.close()

    return _reporting(args, run)


def _info(args: argparse.Namespace) -> int:
    if not args.json and not _tables(args):
        return 2

    def action(conn: SyncConnection) -> None:
        message = conn.call(commands.info(args.id))["message"]
        if args.json:
            _print(message)
            return
        from broker.cli.dashboard import info_table

        _show(info_table(message))

    return _raw(args, action)


def _stats(args: argparse.Namespace) -> int:
    if not args.json and not _tables(args):
        return 2
    request = commands.stats(args.queue)
    if args.connections:
        request["connections"] = True

    def action(conn: SyncConnection) -> None:
        first = conn.call(request)
        if args.json:
            _print(first)
            return
        from broker.cli.dashboard import connections_table, stats_table

        later = None
        if args.rates:
            time.sleep(1.0)  # the sampling interval of the rates
            later = conn.call(request)
        _show(stats_table(first, later))
        if args.connections:
            _show(connections_table((later or first).get("connections", [])))

    return _raw(args, action)


def _peek(args: argparse.Namespace) -> int:
    if not args.json and not _tables(args):
        return 2
    request = commands.peek(args.queue, state=args.state, limit=args.limit)

    def action(conn: SyncConnection) -> None:
        reply = conn.call(request)
        if args.json:
            reply.pop("ok", None)
            _print(reply)
            return
        from broker.cli.dashboard import peek_table

        _show(peek_table(reply["messages"], reply["total"]))

    return _raw(args, action)


def _purge(args: argparse.Namespace) -> int:
    return _guard(args, lambda client: print(client.purge(args.queue)))
