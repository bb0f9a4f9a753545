"""Queue management commands: queues, purge, redrive, remove, delete, pause, resume, config.

Owns: one client call per command and one sentence saying what it did
(``purged 2 messages from jobs``); ids a command was given and could not act
on are named on stderr, with exit code 1. ``config`` shows a queue's settings
after the change, marking those that are the server's defaults; ``none``
resets a setting.
Must never: import the server, or change anything the command line did not ask for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, Final

import msgspec

import wonderq
from broker.cli.target import EXIT_FAILED, Target, client_command, run_command, tell
from wonderq import KEEP


def count(n: int, what: str) -> str:
    """``1 message``, ``2 messages``."""
    return f"{n} {what}{'' if n == 1 else 's'}"


def add_parser(sub: Any) -> None:
    p = client_command(sub, "queues", _queues, "One name a line, sorted.")
    p.add_argument("--prefix", help="only the queues whose name starts with this")
    client_command(sub, "purge", _purge, "Leased messages are not touched.").add_argument("queue")
    p = client_command(
        sub, "redrive", _redrive, "Their attempts start again from 0, at the end of the queue."
    )
    p.add_argument("queue", help="the queue whose <queue>.dead to empty")
    p.add_argument("ids", nargs="*", metavar="ID", help="only these dead letters (default all)")
    p = client_command(
        sub,
        "remove",
        _remove,
        "A leased message is never removed (its holder may be working on it). "
        "To remove dead letters, name <queue>.dead.",
    )
    p.add_argument("queue")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = client_command(
        sub,
        "delete",
        _delete,
        "Ready, delayed and leased messages, settings and counters all go; a later "
        "put starts a fresh queue. <queue>.dead stays unless --dead.",
    )
    p.add_argument("queue")
    p.add_argument("--dead", action="store_true", help="delete <queue>.dead and its messages too")
    pause = "Leases, acks and expiries go on; waiting consumers wait."
    client_command(sub, "pause", _pause, pause).add_argument("queue")
    resume = "Waiting consumers are served at once."
    client_command(sub, "resume", _resume, resume).add_argument("queue")
    _add_config(sub)


# config flag -> (setting, how its value is read, what it means)
_SETTINGS: Final[dict[str, tuple[str, Callable[[str], float | int], str]]] = {
    "--lease": ("lease", float, "seconds: the lease of a get that names none"),
    "--max-attempts": (
        "max_attempts",
        int,
        "deliveries before dead-lettering, for messages put from now on",
    ),
    "--max-length": ("max_length", int, "most messages held (ready + delayed + leased)"),
    "--rate": ("rate", float, "most deliveries per second, over all consumers"),
    "--dedup-window": ("dedup_window", float, "seconds a put's --dedup id is remembered"),
}
_RESET: Final = ("none", "default")


def _setting(read: Callable[[str], float | int]) -> Callable[[str], float | int | None]:
    def parse(text: str) -> float | int | None:
        if text.lower() in _RESET:
            return None
        try:
            return read(text)
        except ValueError:
            kind = "a whole number" if read is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind} or none") from None

    return parse


def _add_config(sub: Any) -> None:
    p = client_command(
        sub,
        "config",
        _config,
        "Without flags it shows the settings; each flag changes one, and `none` resets it "
        "to the server's default (e.g. --rate none). The settings are shown after the "
        "change; (default) marks the server's.",
    )
    p.add_argument("queue")
    for flag, (name, read, meaning) in _SETTINGS.items():
        p.add_argument(flag, dest=name, type=_setting(read), default=KEEP, help=f"{meaning}")
    p.add_argument("--json", action="store_true", help="print the settings as JSON")


def _queues(args: argparse.Namespace) -> int:
    def action(target: Target) -> None:
        with target.client() as client:
            names = client.queues(args.prefix)
        for name in names:
            print(name)
        if not names:
            tell(
                args,
                f"no queues{' named ' + args.prefix + '...' if args.prefix else ''} at {target.where}",
            )

    return run_command(args, action)


def _purge(args: argparse.Namespace) -> int:
    def action(target: Target) -> None:
        with target.client() as client:
            purged = client.purge(args.queue)
        print(f"purged {count(purged, 'message')} from {args.queue}")

    return run_command(args, action)


def _redrive(args: argparse.Namespace) -> int:
    dead = f"{args.queue}.dead"

    def action(target: Target) -> int | None:
        with target.client() as client:
            result = client.redrive(args.queue, args.ids or None)
        print(f"moved {count(result.redriven, 'message')} from {dead} back to {args.queue}")
        return _unmoved(
            args,
            {
                f"not moved, leased by a consumer of {dead}": result.leased,
                f"not in {dead}": result.not_found,
            },
        )

    return run_command(args, action)


def _remove(args: argparse.Namespace) -> int:
    def action(target: Target) -> int | None:
        with target.client() as client:
            result = client.remove(args.queue, args.ids)
        print(f"removed {count(result.removed, 'message')} from {args.queue}")
        return _unmoved(
            args,
            {
                "not removed, leased (its holder may be working on it)": result.leased,
                f"not in {args.queue}": result.not_found,
            },
        )

    return run_command(args, action)


def _unmoved(args: argparse.Namespace, groups: dict[str, list[str]]) -> int | None:
    """Name the ids a command could not act on, by reason; exit code 1 if there are any."""
    for reason, ids in groups.items():
        if ids:
            tell(args, f"{reason}: {' '.join(ids)}")
    return EXIT_FAILED if any(groups.values()) else None


def _delete(args: argparse.Namespace) -> int:
    def action(target: Target) -> None:
        with target.client() as client:
            deleted = client.delete(args.queue, dead=args.dead)
        also = f" and {args.queue}.dead" if args.dead else ""
        print(f"deleted {args.queue}{also}: {count(deleted, 'message')}")

    return run_command(args, action)


def _pause(args: argparse.Namespace) -> int:
    def action(target: Target) -> None:
        with target.client() as client:
            client.pause(args.queue)
        print(
            f"paused {args.queue}: it takes puts but delivers nothing until "
            f"`wonderq resume {args.queue}`"
        )

    return run_command(args, action)


def _resume(args: argparse.Namespace) -> int:
    def action(target: Target) -> None:
        with target.client() as client:
            client.resume(args.queue)
        print(f"resumed {args.queue}")

    return run_command(args, action)


def _config(args: argparse.Namespace) -> int:
    changes = {name: getattr(args, name) for name, _, _ in _SETTINGS.values()}

    def action(target: Target) -> None:
        with target.client() as client:
            settings = client.config(args.queue, **changes)
            own = client.stats(args.queue).queues[args.queue].settings
        if args.json:
            sys.stdout.write(msgspec.json.encode(settings).decode() + "\n")
            return
        for name in wonderq.QueueSettings.__struct_fields__:
            shown = _shown(name, getattr(settings, name))
            print(f"{name:<13} {shown}{'' if name in own else ' (default)'}")

    return run_command(args, action)


def _shown(name: str, value: float | int | None) -> str:
    if value is None:
        return "none (no limit)"
    if name == "rate":
        return f"{value:g}/s"
    if name in ("lease", "dedup_window"):
        return f"{value:g} s"
    return str(value)
