"""One-shot subcommands for a shell: put, get, info, stats, purge.

Owns: turning one command line into one or two client calls and printing the
result as JSON (one line per message for ``get``). Uses the bundled blocking
client (``wonderq.Client``), so it speaks to any WonderQ broker.
Must never: import the server.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

import wonderq

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
    p = sub.add_parser("put", help="put one message", description="Put one message.")
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
        help="lease messages and print them",
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

    p = sub.add_parser("info", help="show one message", description="Show one message.")
    p.add_argument("id")
    _connection_flags(p)
    p.set_defaults(run=_info)

    p = sub.add_parser("stats", help="show server and queue counters")
    p.add_argument("queue", nargs="?", help="only this queue")
    _connection_flags(p)
    p.set_defaults(run=_stats)

    p = sub.add_parser("purge", help="delete a queue's ready and delayed messages")
    p.add_argument("queue")
    _connection_flags(p)
    p.set_defaults(run=_purge)


def _client(args: argparse.Namespace) -> wonderq.Client:
    return wonderq.Client(args.host, args.port)


def _guard(args: argparse.Namespace, action: Any) -> int:
    try:
        with _client(args) as client:
            action(client)
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


def _info(args: argparse.Namespace) -> int:
    return _guard(args, lambda client: _print(client.info(args.id)))


def _stats(args: argparse.Namespace) -> int:
    return _guard(args, lambda client: _print(client.stats(args.queue)))


def _purge(args: argparse.Namespace) -> int:
    return _guard(args, lambda client: print(client.purge(args.queue)))


def run(args: argparse.Namespace) -> int:  # pragma: no cover - each parser sets its own
    return 2
