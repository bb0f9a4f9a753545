"""The ``wonderq`` command: one subcommand per module, registered in one table.

Owns: the top-level parser, ``--version``, and the table of subcommands with
their one-line help. A subcommand's module is imported only when that
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
    "put": Subcommand("broker.cli.oneshot", "put one message"),
    "get": Subcommand("broker.cli.oneshot", "lease messages and print them"),
    "info": Subcommand("broker.cli.oneshot", "show one message"),
    "stats": Subcommand("broker.cli.oneshot", "show server and queue counters"),
    "peek": Subcommand("broker.cli.oneshot", "list a queue's messages without leasing them"),
    "top": Subcommand("broker.cli.top", "live dashboard of the queues (q quits)"),
    "purge": Subcommand("broker.cli.oneshot", "delete a queue's ready and delayed messages"),
    "demo": Subcommand("broker.cli.demo", "watch a narrated demo of the broker's guarantees"),
    "bench": Subcommand(
        "broker.cli.bench",
        "measure throughput, latency, CPU and memory (optionally against beanstalkd and Redis)",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``wonderq`` parser: with ``command``, the parser that runs it (only its module is
    imported); without, one that lists every subcommand from the table and imports none."""
    parser = argparse.ArgumentParser(
        prog="wonderq",
        description="WonderQ: a message broker you can debug with nc.",
    )
    parser.add_argument("--version", action="version", version=f"wonderq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command is None:
        for name, entry in SUBCOMMANDS.items():
            # a placeholder: it takes any arguments, which the real parser then reads
            sub.add_parser(name, help=entry.help, add_help=False)
        return parser
    importlib.import_module(SUBCOMMANDS[command].module).add_parser(sub)
    if command not in sub.choices:
        raise RuntimeError(f"{SUBCOMMANDS[command].module} does not add the {command} subcommand")
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
