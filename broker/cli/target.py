"""The broker a client command talks to: its flags, its environment, and its errors in words.

Owns: the connection flags every client subcommand takes (``--host --port
--token --token-file --tls --tls-ca``, one group, listed in each ``--help``
with the environment variables they default to: ``WONDERQ_HOST``,
``WONDERQ_PORT``, ``WONDERQ_TOKEN``, ``WONDERQ_TLS_CA``; a flag wins over its
variable), turning them into a ``Target`` that opens the bundled client's
connections, and ``explain``: a client error as one sentence a person can act
on (a refused connection says how to start a broker, an auth failure names
``--token``/``WONDERQ_TOKEN``, a TLS mismatch says which side speaks TLS).
Must never: import the server, or print a token.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import wonderq
from broker.cli.tokens import read_token
from broker.config import TOKEN_ENV
from wonderq import commands
from wonderq.sync import SyncConnection

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 7878
HOST_ENV: Final = "WONDERQ_HOST"
PORT_ENV: Final = "WONDERQ_PORT"
TLS_CA_ENV: Final = "WONDERQ_TLS_CA"
ENV_NAMES: Final = (HOST_ENV, PORT_ENV, TOKEN_ENV, TLS_CA_ENV)

#: exit codes of the client commands (``wonderq --help`` lists them)
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the broker said no, or could not be reached
EXIT_USAGE: Final = 2  # argparse's code for a bad command line
EXIT_EMPTY: Final = 3  # ``get`` received nothing


class UsageError(ValueError):
    """A bad combination of flags or environment (exit code 2)."""


def add_target_flags(p: argparse.ArgumentParser, *, what: str = "the broker") -> None:
    """The connection flags, in a group of their own; ``what`` names what they reach."""
    group = p.add_argument_group(
        f"connecting to {what} (a flag wins over its environment variable)"
    )
    group.add_argument(
        "--host", help=f"address (default ${HOST_ENV}, else {DEFAULT_HOST})", metavar="HOST"
    )
    group.add_argument(
        "--port", type=_port, help=f"port (default ${PORT_ENV}, else {DEFAULT_PORT})"
    )
    group.add_argument(
        "--token",
        help=f"authenticate with this token (default ${TOKEN_ENV}; other users can see a "
        "flag in `ps`: prefer --token-file or the variable)",
    )
    group.add_argument("--token-file", help="read the token from this file", metavar="FILE")
    group.add_argument(
        "--tls", action="store_true", help="speak TLS, trusting the system's CA certificates"
    )
    group.add_argument(
        "--tls-ca",
        help=f"speak TLS, trusting this CA (or self-signed) certificate (default ${TLS_CA_ENV})",
        metavar="FILE",
    )


def client_command(
    sub: Any, name: str, run: Callable[[argparse.Namespace], int], description: str | None = None
) -> argparse.ArgumentParser:
    """A client subcommand's parser: what it says more than its one-line help, the
    connection flags, and ``run``; the caller adds its own arguments."""
    p: argparse.ArgumentParser = sub.add_parser(name, description=description)
    add_target_flags(p)
    p.set_defaults(run=run)
    return p


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, not {port}")
    return port


@dataclass(frozen=True, slots=True)
class Target:
    """Where the broker is and how to reach it; ``token_from`` says where the token came from."""

    host: str
    port: int
    token: str | None = None
    token_from: str | None = None  # "--token", "--token-file", "WONDERQ_TOKEN"
    tls: ssl.SSLContext | None = None
    tls_ca: str | None = None  # the CA file of --tls-ca or WONDERQ_TLS_CA

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def client(
        self,
        *,
        timeout_s: float | None = 30.0,
        reconnect: bool = False,
        reconnect_timeout: float = 30.0,
    ) -> wonderq.Client:
        """The blocking client (not connected yet)."""
        return wonderq.Client(
            self.host,
            self.port,
            token=self.token,
            ssl=self.tls,
            request_timeout=timeout_s,
            connect_timeout=timeout_s,
            reconnect=reconnect,
            reconnect_timeout=reconnect_timeout,
        )

    def async_client(
        self, *, reconnect: bool = False, reconnect_timeout: float = 30.0
    ) -> wonderq.AsyncClient:
        """The asyncio client (not connected yet)."""
        return wonderq.AsyncClient(
            self.host,
            self.port,
            token=self.token,
            ssl=self.tls,
            reconnect=reconnect,
            reconnect_timeout=reconnect_timeout,
        )

    def raw(self, timeout_s: float = 30.0) -> SyncConnection:
        """A bare blocking connection, authenticated: replies come as dicts, unknown fields kept."""
        conn = SyncConnection.open(
            self.host,
            self.port,
            ssl=self.tls,
            request_timeout=timeout_s,
            connect_timeout=timeout_s,
        )
        if self.token is not None:
            try:
                conn.call(commands.auth(self.token))
            except BaseException:
                conn.close()
                raise
        return conn


def names_a_broker(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a flag or a variable says where a broker is (``demo`` and ``bench`` start
    their own unless one does)."""
    env = os.environ if environ is None else environ
    return (
        args.host is not None
        or args.port is not None
        or bool(env.get(HOST_ENV) or env.get(PORT_ENV))
    )


def target_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Target:
    """The ``Target`` of the connection flags, the environment filling what they leave."""
    env = os.environ if environ is None else environ
    host = args.host or env.get(HOST_ENV) or DEFAULT_HOST
    port = args.port
    if port is None:
        text = env.get(PORT_ENV)
        try:
            port = DEFAULT_PORT if not text else _port(text)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{PORT_ENV}: {exc}") from None
    try:
        token, token_from = read_token(args, env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ca = args.tls_ca or env.get(TLS_CA_ENV) or None
    return Target(host, port, token, token_from, _tls(args, ca), ca)


def _tls(args: argparse.Namespace, ca: str | None) -> ssl.SSLContext | None:
    if ca is None and not args.tls:
        return None
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        source = "--tls-ca" if args.tls_ca else TLS_CA_ENV
        raise UsageError(f"cannot load the CA certificate of {source} ({ca}): {exc}") from None


def explain(target: Target, exc: wonderq.WonderQError) -> str:
    """What went wrong, in one sentence that says what to do about it."""
    if isinstance(exc, wonderq.Unauthorized):
        if target.token is None:
            return (
                f"the broker at {target.where} needs a token: give --token-file FILE or "
                f"--token TOKEN, or set {TOKEN_ENV}"
            )
        return f"the broker at {target.where} refused the token from {target.token_from}: {exc}"
    if isinstance(exc, wonderq.ConnectFailed) and target.tls is not None:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(cause):
            return (
                f"cannot connect to {target.where} with TLS: the broker there does not speak "
                "TLS; drop --tls/--tls-ca (and WONDERQ_TLS_CA)"
            )
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"cannot connect to {target.where} with TLS: its certificate is not trusted "
                f"({cause.verify_message}); give its CA certificate with --tls-ca FILE"
            )
    lost = isinstance(exc, wonderq.ConnectionLost) and not isinstance(exc, wonderq.ConnectFailed)
    if lost and target.tls is None and "closed by the server" in exc.message:
        return (
            f"the broker at {target.where} closed the connection without a reply: if it "
            "serves TLS, add --tls (and --tls-ca FILE for a private CA)"
        )
    return exc.message


def run_command(args: argparse.Namespace, action: Callable[[Target], int | None]) -> int:
    """Run ``action`` on the flags' target; its exit code (None: 0). A client error is one
    line on stderr (``explain``) and exit code 1; a bad flag or variable, exit code 2."""
    try:
        target = target_from(args)
    except UsageError as exc:
        tell(args, str(exc))
        return EXIT_USAGE
    try:
        code = action(target)
    except wonderq.WonderQError as exc:
        tell(args, explain(target, exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130  # the shell's code for SIGINT, without a traceback
    return EXIT_OK if code is None else code


def tell(args: argparse.Namespace, text: str) -> None:
    """``wonderq <command>: <text>`` on stderr."""
    print(f"wonderq {args.command}: {text}", file=sys.stderr)
