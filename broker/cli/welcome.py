"""What ``wonderq serve`` prints once it listens: how the person who started it reaches it.

Owns: the lines after ``listening on HOST:PORT`` and ``http on HOST:PORT``: the client
command as it was started (``.venv/bin/wonderq`` under ``make serve``, ``wonderq`` when
that is the one on PATH) with the flags this broker needs (``--host``, ``--port``,
``--tls-ca``), netcat, the dashboard and the web console.
Must never: print the token, or change the lines before it (scripts and tests read those).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from broker.cli.target import DEFAULT_HOST, DEFAULT_PORT
from broker.config import TOKEN_ENV

#: addresses that listen on every interface: a client on this machine reaches them on loopback
EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})


def command_name(argv0: str, which: Callable[[str], str | None] = shutil.which) -> str:
    """The client command as the user would type it: the path this process was started by
    (``.venv/bin/wonderq`` under ``make serve``), or ``wonderq`` when that is the one on
    PATH, or when started another way (``python -m broker serve``)."""
    if os.path.basename(argv0) != "wonderq":
        return "wonderq"
    found = which("wonderq")
    if found is not None and os.path.realpath(found) == os.path.realpath(argv0):
        return "wonderq"
    return argv0


@dataclass(frozen=True, slots=True)
class Listening:
    """Where the broker listens, as a client on this machine reaches it."""

    host: str
    port: int
    console: str | None  # the web console's URL; None without HTTP
    token: bool
    tls: bool


def how_to_reach(command: str, at: Listening) -> list[str]:
    """Two lines: a put and a get to paste in another terminal, then the other ways in."""
    host = DEFAULT_HOST if at.host in EVERY_INTERFACE else at.host
    flags = [] if host == DEFAULT_HOST else ["--host", host]
    flags += [] if at.port == DEFAULT_PORT else ["--port", str(at.port)]
    flags += ["--tls-ca", "CERT.pem"] if at.tls else []

    def cli(subcommand: str, *words: str) -> str:
        return " ".join([command, subcommand, *flags, *words])

    env = f" (with {TOKEN_ENV} set)" if at.token else ""
    others = [f"{cli('top')} (a dashboard)"]
    if not at.tls:
        others.append(f"nc {host} {at.port} (then type HELP)")
    if at.console is not None:
        others.append(f"the web console at {at.console}")
    return [
        f"try it in another terminal{env}: {cli('put', 'jobs', 'hello')} && "
        f"{cli('get', 'jobs', '--ack')}",
        f"  also: {', '.join(others)}; Ctrl-C stops the broker",
    ]
