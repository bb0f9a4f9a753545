"""The ``wonderq`` command: one subcommand per module, registered in one table.

Owns: the top-level parser, ``--version``, and the table of subcommands. Each
subcommand module exposes ``add_parser(subparsers)`` and ``run(args) -> int``.
Must never: hold subcommand logic itself.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from broker import __version__

#: subcommand name -> module (imported lazily, so `wonderq put` does not load the server)
SUBCOMMANDS: dict[str, str] = {
    "serve": "broker.cli.serve",
    "put": "broker.cli.oneshot",
    "get": "broker.cli.oneshot",
    "info": "broker.cli.oneshot",
    "stats": "broker.cli.oneshot",
    "peek": "broker.cli.oneshot",
    "top": "broker.cli.top",
    "purge": "broker.cli.oneshot",
    "demo": "broker.cli.demo",
    "bench": "broker.cli.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wonderq",
        description="WonderQ: a message broker you can debug with nc.",
    )
    parser.add_argument("--version", action="version", version=f"wonderq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for module_name in SUBCOMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # a subcommand whose module is not installed yet
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result


def entry() -> None:
    sys.exit(main())
