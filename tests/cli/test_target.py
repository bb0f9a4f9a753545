"""The connection flags every client command takes, their environment variables, and errors
a person can act on: a refused connection, a missing or wrong token, a TLS mismatch."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

import wonderq
from broker.cli import SUBCOMMANDS, build_parser, main
from broker.cli.target import UsageError, explain, target_from
from broker.cli.top import Poller
from broker.config import Config
from broker.server import Server
from tests.cli.shell import wonderq as run_wonderq
from tests.cli.test_registration import subparsers
from tests.conftest import ServerFactory
from tests.support import CertFiles

TOKEN = "cli-test-token-0123456789"
#: every subcommand that talks to a broker (serve is the broker)
CLIENT_COMMANDS = [name for name in SUBCOMMANDS if name not in ("serve", "bench")]
FLAGS = ("--host", "--port", "--token", "--token-file", "--tls", "--tls-ca")
VARIABLES = ("$WONDERQ_HOST", "$WONDERQ_PORT", "$WONDERQ_TOKEN", "$WONDERQ_TLS_CA")


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser(command).parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", CLIENT_COMMANDS)
def test_every_client_command_takes_the_connection_flags_and_names_their_variables(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(command, capsys)
    for flag in FLAGS:
        assert f"{flag} " in text or f"{flag}," in text, (command, flag)
    for variable in VARIABLES:
        assert variable in text, (command, variable)
    assert "a flag wins over its environment variable" in text


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_command_s_help_opens_with_its_one_line_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = SUBCOMMANDS[command].help
    assert f"{summary[0].upper()}{summary[1:]}." in help_of(command, capsys)


def description_of(command: str) -> str:
    chosen = subparsers(build_parser(command)).choices[command]
    return " ".join((chosen.description or "").split())


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_no_command_s_help_says_its_summary_twice(command: str) -> None:
    """'Run the broker. Run the WonderQ broker.' read as a stutter: after the summary, the
    description says more, not the same again."""
    opening = " ".join(SUBCOMMANDS[command].help.split()[:2]).lower()
    assert description_of(command).lower().count(opening) == 1, description_of(command)


def test_serve_s_help_says_what_it_listens_on_prints_and_reads() -> None:
    text = description_of("serve")
    for said in ("127.0.0.1:7878", "listening on HOST:PORT", "WONDERQ_TOKEN", "Ctrl-C"):
        assert said in text, said


def flags(**given: Any) -> argparse.Namespace:
    values: dict[str, Any] = dict.fromkeys(("host", "port", "token", "token_file", "tls_ca"))
    return argparse.Namespace(**{**values, "tls": False, **given})


def test_flags_win_over_the_environment_which_wins_over_the_defaults(tmp_path: Path) -> None:
    env = {"WONDERQ_HOST": "10.0.0.9", "WONDERQ_PORT": "7000", "WONDERQ_TOKEN": "from-env"}
    assert target_from(flags(), {}).where == "127.0.0.1:7878"
    target = target_from(flags(), env)
    assert (target.where, target.token, target.token_from) == (
        "10.0.0.9:7000",
        "from-env",
        "WONDERQ_TOKEN",
    )
    target = target_from(flags(host="h", port=1, token="from-flag"), env)
    assert (target.where, target.token, target.token_from) == ("h:1", "from-flag", "--token")
    token_file = tmp_path / "token"
    token_file.write_text("  from-file\n")
    target = target_from(flags(token_file=str(token_file)), env)
    assert (target.token, target.token_from) == ("from-file", "--token-file")
    assert target.tls is None


@pytest.mark.parametrize(
    ("given", "env", "message"),
    [
        ({"token": "a", "token_file": "b"}, {}, "give --token or --token-file, not both"),
        ({"token_file": "/nonexistent/token"}, {}, "cannot read --token-file"),
        ({}, {"WONDERQ_PORT": "http"}, "WONDERQ_PORT: not a port number: 'http'"),
        ({}, {"WONDERQ_PORT": "70000"}, "WONDERQ_PORT: a port is 1-65535, not 70000"),
        ({"tls_ca": "/nonexistent/ca.pem"}, {}, "cannot load the CA certificate of --tls-ca"),
        ({}, {"WONDERQ_TLS_CA": "/nonexistent/ca.pem"}, "of WONDERQ_TLS_CA"),
    ],
)
def test_bad_connection_settings_are_usage_errors_that_name_them(
    given: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        target_from(flags(**given), env)


def test_tls_comes_from_the_flag_or_the_ca_variable(test_cert: CertFiles) -> None:
    assert target_from(flags(tls=True), {}).tls is not None
    assert target_from(flags(), {"WONDERQ_TLS_CA": str(test_cert.cert)}).tls is not None


async def test_the_variables_reach_the_broker_and_a_flag_wins_over_each(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with server_factory(token=TOKEN) as srv:
        await put_one(srv, "jobs")
        env = {"WONDERQ_HOST": "127.0.0.1", "WONDERQ_PORT": str(srv.port), "WONDERQ_TOKEN": TOKEN}
        out, _ = await run_wonderq("queues", env=env)
        assert out.split() == ["jobs"]
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        wrong = {
            "WONDERQ_HOST": "192.0.2.1",
            "WONDERQ_PORT": "1",
            "WONDERQ_TOKEN": "wrong-0123456789",
        }
        given = ("--host", "127.0.0.1", "--port", str(srv.port), "--token-file", str(token_file))
        out, _ = await run_wonderq("queues", *given, env=wrong)
        assert out.split() == ["jobs"]
        out, _ = await run_wonderq("queues", "--port", str(srv.port), "--token", TOKEN)
        assert out.split() == ["jobs"]


async def put_one(srv: Server, queue: str, **tls: Any) -> None:
    async with await wonderq.connect("127.0.0.1", srv.port, token=srv.config.token, **tls) as c:
        await c.put(queue, "x")


async def test_a_missing_or_wrong_token_names_the_flags_and_the_variable(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(token=TOKEN) as srv:
        port = ("--port", str(srv.port))
        _, err = await run_wonderq("put", "jobs", "x", *port, exit_code=1)
        assert err.strip() == (
            f"wonderq put: the broker at 127.0.0.1:{srv.port} needs a token: give "
            "--token-file FILE or --token TOKEN, or set WONDERQ_TOKEN"
        )
        env = {"WONDERQ_TOKEN": "wrong-token-0123456789"}
        _, err = await run_wonderq("stats", "--json", *port, env=env, exit_code=1)
        assert "refused the token from WONDERQ_TOKEN: wrong token" in err
        assert "wrong-token-0123456789" not in err  # never printed
        _, err = await run_wonderq(
            "peek", "jobs", *port, "--token", "bad-0123456789xx", exit_code=1
        )
        assert "refused the token from --token" in err


async def test_a_refused_connection_says_once_that_no_broker_runs_there_and_how_to_start_one(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as srv:
        port = srv.port
    # the server is gone: nothing listens on its port any more
    _, err = await run_wonderq("purge", "jobs", "--port", str(port), exit_code=1)
    assert err.strip() == (
        f"wonderq purge: cannot connect to 127.0.0.1:{port}: connection refused: no broker is "
        f"running at that address (start one with `wonderq serve --port {port}`)"
    )


async def test_every_client_command_speaks_tls_with_a_token(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0, token=TOKEN)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        env = {"WONDERQ_PORT": str(srv.port), "WONDERQ_TOKEN": TOKEN}
        tls = ("--tls-ca", str(test_cert.cert))
        out, _ = await run_wonderq("put", "secure", '{"n": 1}', *tls, env=env)
        msg_id = out.strip()
        out, _ = await run_wonderq("stats", "secure", "--json", *tls, env=env)
        assert msgspec.json.decode(out)["queues"]["secure"]["ready"] == 1
        out, _ = await run_wonderq("peek", "secure", "--json", *tls, env=env)
        assert [m["id"] for m in msgspec.json.decode(out)["messages"]] == [msg_id]
        out, _ = await run_wonderq("info", msg_id, "--json", *tls, env=env)
        assert msgspec.json.decode(out)["state"] == "ready"
        env_ca = {**env, "WONDERQ_TLS_CA": str(test_cert.cert)}
        out, _ = await run_wonderq("get", "secure", "--ack", env=env_ca)
        assert msgspec.json.decode(out)["id"] == msg_id
        out, _ = await run_wonderq("queues", env=env_ca)
        assert out.split() == ["secure"]
        # top polls through the same target
        target = target_from(flags(port=srv.port, token=TOKEN, tls_ca=str(test_cert.cert)), {})
        board = _Board()
        poller = Poller(target, timeout_s=5)
        try:
            await asyncio.to_thread(poller.poll, board)  # type: ignore[arg-type]
        finally:
            poller.close()
        assert board.reply is not None and "secure" in board.reply["queues"]


class _Board:
    """What ``Poller`` feeds (the dashboard's two entry points)."""

    reply: dict[str, Any] | None = None
    reason: str | None = None

    def update(self, reply: dict[str, Any]) -> None:
        self.reply = reply

    def lost(self, reason: str) -> None:
        self.reason = reason


async def test_a_tls_mismatch_says_which_side_speaks_tls(test_cert: CertFiles) -> None:
    async with Server(Config(host="127.0.0.1", port=0), ssl=test_cert.server_context()) as srv:
        port = ("--port", str(srv.port))
        _, err = await run_wonderq("queues", *port, exit_code=1)
        assert err.strip() == (
            f"wonderq queues: the broker at 127.0.0.1:{srv.port} closed the connection without "
            "a reply: if it serves TLS, add --tls (and --tls-ca FILE for a private CA)"
        )
        _, err = await run_wonderq("queues", *port, "--tls", exit_code=1)
        assert "its certificate is not trusted" in err and "--tls-ca FILE" in err
    async with Server(Config(host="127.0.0.1", port=0)) as plain:
        tls = ("--port", str(plain.port), "--tls-ca", str(test_cert.cert))
        _, err = await run_wonderq("queues", *tls, exit_code=1)
        assert err.strip() == (
            f"wonderq queues: cannot connect to 127.0.0.1:{plain.port} with TLS: the broker "
            "there does not speak TLS; drop --tls/--tls-ca (and WONDERQ_TLS_CA)"
        )


async def test_demo_against_a_broker_with_a_token_and_tls(
    test_cert: CertFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(host="127.0.0.1", port=0, token=TOKEN)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        monkeypatch.setenv("WONDERQ_TOKEN", TOKEN)
        argv = ["demo", "--fast", "--port", str(srv.port), "--tls-ca", str(test_cert.cert)]
        async with asyncio.timeout(60):
            assert await asyncio.to_thread(main, argv) == 0
        monkeypatch.delenv("WONDERQ_TOKEN")
        async with asyncio.timeout(60):
            assert await asyncio.to_thread(main, argv) == 1  # no token: it says so, no traceback


def test_explain_leaves_other_errors_as_the_broker_said_them() -> None:
    target = target_from(flags(), {})
    assert explain(target, wonderq.NotFound("no queue named 'x'")) == "no queue named 'x'"
