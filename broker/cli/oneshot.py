"""One-shot message commands for a shell: put, get, info, stats, peek.

Owns: turning one command line into a few client calls and saying what
happened: ``put`` prints the id (a duplicate says so on stderr), ``get`` one
JSON line per message on stdout and, on stderr, what became of each message it
did not ack (released with its attempt count, or dead-lettered) or why nothing
came (exit code 3); ``info``, ``stats`` and ``peek`` print tables sized to the
terminal (rich, from the ``tools`` extra) unless ``--json``, which prints the
broker's reply as it came, unknown fields included. Uses the bundled blocking
client through ``target``, so it speaks to any WonderQ broker, with a token
and TLS.
Must never: import the server, or leave a message leased without saying so.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

import wonderq
from broker.cli.target import EXIT_EMPTY, EXIT_USAGE, Target, client_command, run_command, tell
from broker.protocol.requests import PEEK_LIMIT_DEFAULT, PEEK_LIMIT_MAX
from broker.tools import ToolsMissing, require_tools
from wonderq import commands
from wonderq.sync import SyncConnection


def _body(text: str) -> Any:
    """JSON if the text parses as JSON, else the text as a string (like the shorthand)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a header is NAME=VALUE, not {text!r}")
    return name, value


def _print(obj: Any) -> None:
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")


def add_parser(sub: Any) -> None:
    _add_put(sub)
    _add_get(sub)

    p = client_command(sub, "info", _info, "Changes nothing. A table, or --json.")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the message as JSON")

    p = client_command(
        sub,
        "stats",
        _stats,
        (
            "The server's figures and one row per queue (<queue>.dead is folded into its "
            "queue's dead column). --json prints the STATS reply as it came."
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

    p = client_command(
        sub,
        "peek",
        _peek,
        (
            "Nothing is leased or changed: id, state, attempts, key, age, lease holder "
            "and time left, headers, and the body (cut to fit)."
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


def _add_put(sub: Any) -> None:
    p = client_command(
        sub,
        "put",
        _put,
        (
            "Prints the message's id. BODY is JSON if it parses, else a string; '-' reads "
            "it from stdin (one trailing newline dropped), e.g. echo '{\"a\":1}' | wonderq "
            "put jobs -."
        ),
    )
    p.add_argument("queue")
    p.add_argument("body", help="message body: JSON if it parses, else a string; - for stdin")
    p.add_argument("--key", help="per-key ordering and mutual exclusion")
    p.add_argument("--delay", type=float, help="seconds before the message is deliverable")
    p.add_argument("--priority", type=int, help="lower is delivered first (default 0)")
    p.add_argument("--max-attempts", type=int, help="deliveries before dead-lettering")
    p.add_argument(
        "--dedup",
        help="an id for this PUT: the same one again within the queue's dedup window "
        "stores nothing and prints the first message's id (safe retries)",
    )
    p.add_argument(
        "--header",
        type=_header,
        action="append",
        metavar="NAME=VALUE",
        help="a header carried with the message (repeat for more)",
    )


def _add_get(sub: Any) -> None:
    p = client_command(
        sub,
        "get",
        _get,
        (
            "Prints one JSON line per message on stdout. Then: --ack deletes them; "
            "--nack gives them back (after --delay seconds); by default they are released "
            "at once, and stderr says so with their attempt count: each get is a delivery, "
            "and a message delivered max-attempts times goes to <queue>.dead. To look "
            "without leasing, use `wonderq peek`. "
            "There is no one-shot `wonderq ack ID`: only the connection that leased a "
            "message may ack it, and a one-shot command's connection ends when it exits, "
            "so lease and ack in one go with `get --ack` (or run a worker). "
            f"Exit code {EXIT_EMPTY} (and a line on stderr saying why) when nothing was "
            "received."
        ),
    )
    p.add_argument("queue")
    p.add_argument("--max", type=int, default=1, help="messages to lease (default 1)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for a message")
    p.add_argument("--lease", type=float, help="lease in seconds (default: the queue's)")
    settle = p.add_mutually_exclusive_group()
    settle.add_argument("--ack", action="store_true", help="acknowledge (delete) what was received")
    settle.add_argument(
        "--nack", action="store_true", help="give what was received back (see --delay)"
    )
    p.add_argument(
        "--delay", type=float, help="with --nack: seconds before the messages are ready again"
    )


def _read_body(args: argparse.Namespace) -> Any:
    if args.body != "-":
        return _body(args.body)
    text = sys.stdin.read()
    return _body(text[:-1] if text.endswith("\n") else text)


def _put(args: argparse.Namespace) -> int:
    body = _read_body(args)

    def action(target: Target) -> None:
        with target.client() as client:
            result = client.put_result(
                args.queue,
                body,
                key=args.key,
                delay=args.delay,
                priority=args.priority,
                max_attempts=args.max_attempts,
                dedup=args.dedup,
                headers=dict(args.header) if args.header else None,
            )
        print(result.id)
        if result.duplicate:
            tell(
                args,
                f"nothing stored: dedup {args.dedup!r} was put in {args.queue} within its dedup "
                f"window, as {result.id}",
            )

    return run_command(args, action)


def _get(args: argparse.Namespace) -> int:
    if args.delay is not None and not args.nack:
        tell(args, "--delay goes with --nack")
        return EXIT_USAGE

    def action(target: Target) -> int | None:
        with target.client(timeout_s=30.0) as client:
            msgs = client.get(args.queue, max=args.max, wait=args.wait, lease=args.lease)
            for msg in msgs:
                _print(_delivered(msg))
            if not msgs:
                tell(args, f"nothing received: {_why_empty(client, args.queue, args.wait)}")
                return EXIT_EMPTY
            if args.ack:
                _ack(args, client, msgs)
            else:
                for msg in msgs:
                    tell(args, _give_back(client, msg, args.delay))
        return None

    return run_command(args, action)


def _delivered(msg: wonderq.SyncMessage) -> dict[str, Any]:
    out = {"id": msg.id, "queue": msg.queue, "body": msg.body, "attempts": msg.attempts}
    if msg.key is not None:
        out["key"] = msg.key
    if msg.headers:
        out["headers"] = msg.headers
    return out


def _ack(args: argparse.Namespace, client: wonderq.Client, msgs: list[wonderq.SyncMessage]) -> None:
    result = client.ack_many([m.id for m in msgs])
    lost = result.not_leased + result.not_found
    if lost:  # the lease ran out before the ack (a --lease shorter than the round trip)
        raise wonderq.NotLeased(
            f"{len(lost)} message(s) were not acked, their lease ended first: {' '.join(lost)}"
        )


def _give_back(client: wonderq.Client, msg: wonderq.SyncMessage, delay: float | None) -> str:
    """NACK one message; what became of it, for stderr."""
    if msg.queue.endswith(".dead"):  # a dead letter is never dead-lettered again: no "of N"
        attempt = f"delivery {msg.attempts} of a dead letter"
    else:
        attempt = f"attempt {msg.attempts} of {client.info(msg.id).max_attempts}"
    if msg.nack(delay):
        return (
            f"{msg.id}: moved to {msg.queue}.dead: {attempt} was its last; "
            f"`wonderq redrive {msg.queue}` puts it back"
        )
    if delay:
        return f"{msg.id}: released, {attempt}, ready again in {delay:g} s"
    return f"{msg.id}: released, {attempt}; use --ack to delete, or peek to look without leasing"


def _why_empty(client: wonderq.Client, queue: str, wait: float) -> str:
    within = f" within {wait:g} s" if wait else ""
    try:
        stats = client.stats(queue).queues[queue]
    except wonderq.NotFound:
        return f"there is no queue named {queue!r}"
    if stats.paused:
        return f"{queue} is paused ({stats.ready} ready); `wonderq resume {queue}` restarts it"
    if stats.ready:
        return (
            f"{queue} has {stats.ready} ready message(s) but none could be delivered{within} "
            "(its rate limit, or their keys are leased)"
        )
    held = f"{stats.delayed} delayed, {stats.leased} leased, {stats.dead} dead"
    return f"{queue} has no ready message{within} ({held})"


def _tables(args: argparse.Namespace) -> bool:
    """True if a table is wanted and rich is installed; else print why not and return False."""
    try:
        require_tools(f"wonderq {args.command} (without --json)", "rich")
    except ToolsMissing as exc:
        tell(args, str(exc))
        return False
    return True


def _show(render: Callable[[int], Any]) -> None:
    """Print what ``render(width)`` makes for the terminal's width (or $COLUMNS)."""
    from rich.console import Console

    console = Console(highlight=False)
    console.print(render(console.width))


def _raw(args: argparse.Namespace, action: Callable[[SyncConnection], None]) -> int:
    """Run ``action`` on a bare connection: replies come back as dicts, unknown fields kept."""

    def run(target: Target) -> None:
        conn = target.raw()
        try:
            action(conn)
        finally:
            conn.close()

    return run_command(args, run)


def _info(args: argparse.Namespace) -> int:
    if not args.json and not _tables(args):
        return EXIT_USAGE

    def action(conn: SyncConnection) -> None:
        message = conn.call(commands.info(args.id))["message"]
        if args.json:
            _print(message)
            return
        from broker.cli.dashboard import info_table

        _show(lambda width: info_table(message))

    return _raw(args, action)


def _stats(args: argparse.Namespace) -> int:
    if not args.json and not _tables(args):
        return EXIT_USAGE
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
        _show(lambda width: stats_table(first, later, width=width))
        if args.connections:
            _show(lambda width: connections_table((later or first).get("connections", [])))

    return _raw(args, action)


def _peek(args: argparse.Namespace) -> int:
    if not args.json and not _tables(args):
        return EXIT_USAGE
    request = commands.peek(args.queue, state=args.state, limit=args.limit)

    def action(conn: SyncConnection) -> None:
        reply = conn.call(request)
        if args.json:
            reply.pop("ok", None)
            _print(reply)
            return
        from broker.cli.dashboard import peek_table

        _show(lambda width: peek_table(reply["messages"], reply["total"]))

    return _raw(args, action)
