"""The ``wonderq`` command: one subcommand per module, registered in one table.

Owns: the top-level parser, ``--version``, the exit codes and environment
variables ``wonderq --help`` lists, and the table of subcommands with their
one-line help (each subcommand's ``--help`` opens with it). A subcommand's module is imported only when that
subcommand runs (``wonderq put`` loads the client, never the server or the
benchmark); ``wonderq --help`` lists them all from the table, importing none.
Each subcommand module exposes ``add_parser(subparsers)``, which adds its
subcommands' parsers, each setting ``run(args) -> int`` as its default.
Must never: hold subcommand logic itself, or hide a module that fails to import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from broker import __version__


@dataclass(frozen=True, slots=True)
class Subcommand:
    module: str  # imported when this subcommand runs, never before
    help: str  # its line in `wonderq --help`


SUBCOMMANDS: Final = {
    "serve": Subcommand("broker.cli.serve", "run the broker"),
    "put": Subcommand(
        "broker.cli.oneshot", "put one message (its body from the line, or - for stdin)"
    ),
    "get": Subcommand(
        "broker.cli.oneshot", "lease messages and print them, then ack, nack or release them"
    ),
    "info": Subcommand("broker.cli.oneshot", "show one message"),
    "stats": Subcommand("broker.cli.oneshot", "show server and queue counters"),
    "peek": Subcommand("broker.cli.oneshot", "list a queue's messages without leasing them"),
    "queues": Subcommand("broker.cli.manage", "list the queues"),
    "purge": Subcommand("broker.cli.manage", "delete a queue's ready and delayed messages"),
    "redrive": Subcommand(
        "broker.cli.manage", "move dead letters (all, or the ids named) back to their queue"
    ),
    "remove": Subcommand("broker.cli.manage", "delete chosen ready or delayed messages by id"),
    "delete": Subcommand("broker.cli.manage", "delete a queue and every message in it"),
    "pause": Subcommand("broker.cli.manage", "stop a queue's deliveries (it still takes PUTs)"),
    "resume": Subcommand("broker.cli.manage", "restart a paused queue's deliveries"),
    "config": Subcommand(
        "broker.cli.manage", "show or change a queue's settings (lease, attempts, rate...)"
    ),
    "worker": Subcommand(
        "broker.cli.worker", "run a Python function on every message of a queue (like celery)"
    ),
    "top": Subcommand("broker.cli.top", "live dashboard of the queues (q quits)"),
    "demo": Subcommand("broker.cli.demo", "watch a narrated demo of the broker's guarantees"),
    "bench": Subcommand(
        "broker.cli.bench",
        "measure throughput, latency, CPU and memory (optionally against beanstalkd and Redis)",
    ),
}

EPILOG: Final = """\
Every command but serve reaches the broker at --host/--port, with --token or
--token-file and --tls/--tls-ca; WONDERQ_HOST, WONDERQ_PORT, WONDERQ_TOKEN and
WONDERQ_TLS_CA give their defaults (a flag wins). `wonderq COMMAND --help`
says more.

exit codes: 0 done; 1 the broker refused or could not be reached (the reason is
on stderr); 2 a bad command line; 3 `get` received nothing."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``wonderq`` parser: with ``command``, the parser that runs it (only its module is
    imported); without, one that lists every subcommand from the table and imports none."""
    parser = argparse.ArgumentParser(
        prog="wonderq",
        description="WonderQ: a message broker you can debug with nc.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wonderq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command is None:
        for name, entry in SUBCOMMANDS.items():
            # a placeholder: it takes any arguments, which the real parser then reads
            sub.add_parser(name, help=entry.help, add_help=False)
        return parser
    entry = SUBCOMMANDS[command]
    importlib.import_module(entry.module).add_parser(sub)
    chosen = sub.choices.get(command)
    if chosen is None:
        raise RuntimeError(f"{entry.module} does not add the {command} subcommand")
    # its --help opens with the table's line, then what the module says more
    summary = f"{entry.help[0].upper()}{entry.help[1:]}."
    chosen.description = summary + (f" {chosen.description}" if chosen.description else "")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    listing = build_parser()
    # which subcommand: --help, --version and an unknown command end here
    chosen, _ = listing.parse_known_args(words)
    if chosen.command is None:
        listing.print_help()
        return 2
    args = build_parser(chosen.command).parse_args(words)
    result: int = args.run(args)
    return result


def entry() -> None:
    sys.exit(main())
