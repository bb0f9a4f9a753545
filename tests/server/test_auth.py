"""Token authentication: the gate's table, then over TCP, the clients and the CLI."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import wonderq
from broker.errors import ErrorCode
from broker.protocol.codec import Invalid, decode
from broker.protocol.replies import OK
from broker.protocol.requests import Auth, Ping, Request
from broker.server import server as server_module
from broker.server.auth import MAX_FAILURES, Answered, AuthGate, AuthState
from tests.conftest import ServerFactory, one_backend, one_loop
from tests.support import BrokerProcess, LineClient, closed_by_server, run_python
from tests.test_protocol_doc import matches, substitute

TOKEN = "s3cret-token-s3cret"


def _decode(line: bytes) -> Request | Invalid:
    return decode(line, 1024)


# ------------------------------------------------------------------ the gate


def state(gate: AuthGate) -> AuthState:
    """The gate's state, read through a call (mypy would keep an assert's narrowing)."""
    return gate.state


def test_gate_without_token_passes_everything_and_answers_auth_ok() -> None:
    gate = AuthGate(None)
    ping = Ping(rid=1)
    out = gate.screen([ping, Auth(token="anything", rid=2), ping])
    assert out[0] is ping and out[2] is ping
    assert isinstance(out[1], Answered) and out[1].reply == OK and out[1].rid == 2
    assert state(gate) is AuthState.OPEN


def test_gate_with_token_follows_its_table() -> None:
    gate = AuthGate(TOKEN)
    assert state(gate) is AuthState.LOCKED
    (denied,) = gate.screen([Ping(rid="early")])
    assert isinstance(denied, Invalid) and denied.error.code is ErrorCode.UNAUTHORIZED
    assert denied.rid == "early" and "AUTH" in denied.error.message
    # a decoding error before AUTH is unauthorized too (strangers learn nothing more)
    (garbage,) = gate.screen([_decode(b"{nope")])
    assert isinstance(garbage, Invalid) and garbage.error.code is ErrorCode.UNAUTHORIZED
    ok, ping = gate.screen([Auth(token=TOKEN), Ping()])
    assert isinstance(ok, Answered) and isinstance(ping, Ping)
    assert state(gate) is AuthState.OPEN
    (wrong,) = gate.screen([Auth(token="guess")])  # the third failure
    assert isinstance(wrong, Invalid) and "wrong token" in wrong.error.message
    assert state(gate) is AuthState.REFUSED and "closing" in wrong.error.message
    assert gate.screen([Auth(token=TOKEN), Ping()]) == []  # refused: nothing more


def test_gate_refuses_after_max_failures_mid_batch() -> None:
    gate = AuthGate(TOKEN)
    out = gate.screen([Ping()] * (MAX_FAILURES + 5))
    assert len(out) == MAX_FAILURES
    assert all(isinstance(i, Invalid) for i in out)
    assert state(gate) is AuthState.REFUSED


def test_wrong_token_error_never_echoes_the_token() -> None:
    gate = AuthGate(TOKEN)
    (out,) = gate.screen([Auth(token="my-wrong-guess")])
    assert isinstance(out, Invalid)
    assert "my-wrong-guess" not in out.error.message and TOKEN not in out.error.message


# --------------------------------------------------------------- over TCP


async def test_auth_without_token_configured_replies_ok(server_factory: ServerFactory) -> None:
    async with server_factory() as srv, await LineClient.connect(srv.port) as c:
        assert await c.call(op="AUTH", token="whatever", rid=1) == {"ok": True, "rid": 1}
        assert await c.line("AUTH whatever") == {"ok": True}
        assert await c.call(op="PING") == {"ok": True}


async def test_token_required_then_everything_works(server_factory: ServerFactory) -> None:
    async with (
        server_factory(token=TOKEN) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        reply = await c.call(op="PUT", queue="q", body=1, rid="r")
        assert reply["error"] == "unauthorized" and reply["rid"] == "r"
        assert await c.call(op="AUTH", token=TOKEN) == {"ok": True}
        assert (await c.call(op="PUT", queue="q", body=1))["ok"] is True
        assert (await c.call(op="STATS", queue="q"))["queues"]["q"]["put"] == 1


async def test_shorthand_auth_and_pipelined_auth(server_factory: ServerFactory) -> None:
    async with server_factory(token=TOKEN) as srv:
        async with await LineClient.connect(srv.port) as c:
            assert await c.line(f"AUTH {TOKEN}") == {"ok": True}
            assert await c.line("PING") == {"ok": True}
        async with await LineClient.connect(srv.port) as c:
            # AUTH and requests in one write: the gate opens mid-batch, in order
            await c.send_raw(
                b'{"op":"PING","rid":0}\n'
                + f'{{"op":"AUTH","token":"{TOKEN}","rid":1}}\n'.encode()
                + b'{"op":"PUT","queue":"q","body":2,"rid":2}\n'
            )
            first, second, third = await c.reply(), await c.reply(), await c.reply()
            assert first["error"] == "unauthorized" and first["rid"] == 0
            assert second == {"ok": True, "rid": 1}
            assert third["ok"] is True and third["rid"] == 2


async def test_three_failures_close_the_connection_others_unaffected(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(token=TOKEN) as srv:
        good = await LineClient.connect(srv.port)
        bad = await LineClient.connect(srv.port)
        try:
            assert await good.call(op="AUTH", token=TOKEN) == {"ok": True}
            await good.call(op="PUT", queue="kept", body="safe")
            for i in range(MAX_FAILURES):
                reply = await bad.call(op="AUTH", token=f"guess-{i}")
                assert reply["error"] == "unauthorized"
            assert "closing" in reply["message"]
            assert await closed_by_server(bad)
            got = await good.call(op="GET", queue="kept")
            assert [m["body"] for m in got["messages"]] == ["safe"]
        finally:
            await good.close()
            await bad.close()


async def test_garbage_flood_before_auth_gets_three_errors_then_close(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(token=TOKEN) as srv, await LineClient.connect(srv.port) as c:
        await c.send_raw(b'{"op":"PUT","queue":"q","body":1}\n' * 1000)
        errors = [await c.reply() for _ in range(MAX_FAILURES)]
        assert all(e["error"] == "unauthorized" for e in errors)
        assert await closed_by_server(c)
        # nothing reached the queue
        async with await LineClient.connect(srv.port) as admin:
            await admin.call(op="AUTH", token=TOKEN)
            assert (await admin.call(op="QUEUES"))["queues"] == []


async def test_python_client_with_token(server_factory: ServerFactory) -> None:
    async with server_factory(token=TOKEN) as srv:
        async with await wonderq.connect("127.0.0.1", srv.port, token=TOKEN) as client:
            await client.put("auth-q", {"n": 1})
            (msg,) = await client.get("auth-q")
            assert msg.body == {"n": 1}
            await msg.ack()
        with pytest.raises(wonderq.Unauthorized):
            await wonderq.connect("127.0.0.1", srv.port, token="wrong")
        async with await wonderq.connect("127.0.0.1", srv.port) as anonymous:
            with pytest.raises(wonderq.Unauthorized):
                await anonymous.ping()


# ------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("source", ["flag", "file", "env"])
@one_backend  # its brokers are processes
@one_loop
async def test_cli_token_sources(source: str, tmp_path: Path) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if source == "flag":
        args = ["--token", TOKEN]
    elif source == "file":
        path = tmp_path / "token"
        path.write_text(TOKEN + "\n")
        args = ["--token-file", str(path)]
    else:
        env = {"WONDERQ_TOKEN": TOKEN}
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *args, env=env) as broker:
        async with await LineClient.connect(broker.port) as c:
            assert (await c.call(op="PING"))["error"] == "unauthorized"
            assert await c.call(op="AUTH", token=TOKEN) == {"ok": True}
            assert await c.call(op="PING") == {"ok": True}
        assert await broker.stop() == 0
        assert TOKEN not in await broker.stderr()  # never logged


@one_backend  # its brokers are processes
@one_loop
async def test_cli_bad_token_settings_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for args in (
        ["--token", "a", "--token-file", str(empty)],
        ["--token-file", str(empty)],
        ["--token-file", str(tmp_path / "missing")],
        ["--tls-cert", str(empty)],
    ):
        code, _, err = await run_python("-m", "broker", "serve", "--port", "0", *args)
        assert code == 2, (args, err)
        assert "wonderq serve:" in err


async def _serve_and_stop(log: Path, *args: str) -> str:
    """Start ``wonderq serve ARGS``, stop it; what it wrote on stderr."""
    async with await BrokerProcess.start_with(log, *args) as broker:
        assert await broker.stop() == 0
        return await broker.stderr()


@one_backend  # its brokers are processes
@one_loop
async def test_cli_warns_loudly_on_non_loopback_without_token(tmp_path: Path) -> None:
    err = await _serve_and_stop(tmp_path / "open.log", "--host", "0.0.0.0")
    assert "WARNING" in err and "WITHOUT A TOKEN" in err
    err = await _serve_and_stop(tmp_path / "token.log", "--host", "0.0.0.0", "--token", TOKEN)
    assert "WITHOUT A TOKEN" not in err and "without TLS" in err
    err = await _serve_and_stop(tmp_path / "loopback.log", "--host", "127.0.0.1")
    assert "WARNING" not in err


# ------------------------------------------------------- protocol.md's example


def _token_transcript() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "protocol.md").read_text()
    lines = text.split("# wonderq serve --token s3cret-s3cret-s3cret\n", 1)[1].split("```", 1)[0]
    return lines.splitlines()


async def test_protocol_md_token_transcript(server_factory: ServerFactory) -> None:
    """The token transcript of protocol.md (which the generic replay skips) holds."""
    block = _token_transcript()
    assert len(block) >= 6
    env: dict[str, str] = {}
    async with (
        server_factory(token="s3cret-s3cret-s3cret") as srv,
        await LineClient.connect(srv.port) as c,
    ):
        for line in block:
            kind, text = line[:3], line[3:]
            if kind == "C: ":
                await c.send_raw(substitute(text, env).encode() + b"\n")
                continue
            assert kind == "S: ", line
            actual = await c.reply()
            assert matches(msgspec.json.decode(text), actual, env), (text, actual)
        assert await closed_by_server(c)  # the transcript ends with the third failure


async def _oneshot(port: int, *args: str, token: str | None) -> tuple[int, str, str]:
    env = {} if token is None else {"WONDERQ_TOKEN": token}
    return await run_python("-m", "broker", *args, "--port", str(port), env=env)


async def test_cli_client_commands_take_the_token_from_the_environment(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(token=TOKEN) as srv:
        code, _, err = await _oneshot(srv.port, "put", "cli-q", "hello", token=None)
        assert code == 1 and "needs a token" in err and "WONDERQ_TOKEN" in err
        code, out, _ = await _oneshot(srv.port, "put", "cli-q", "hello", token=TOKEN)
        assert code == 0 and out.strip()
        code, out, _ = await _oneshot(srv.port, "stats", "--json", token=TOKEN)
        assert code == 0 and msgspec.json.decode(out)["queues"]["cli-q"]["put"] == 1
        code, _, err = await _oneshot(srv.port, "stats", "--json", token="bad-guess-123")
        assert code == 1 and "wrong token" in err and "bad-guess-123" not in err


async def test_connection_that_never_authenticates_is_closed(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stranger cannot hold a connection slot: no AUTH within the deadline, closed."""
    monkeypatch.setattr(server_module, "AUTH_TIMEOUT_S", 0.3)
    async with server_factory(token=TOKEN) as srv:
        member = await LineClient.connect(srv.port)
        stranger = await LineClient.connect(srv.port)
        try:
            assert await member.call(op="AUTH", token=TOKEN) == {"ok": True}
            refusal = await stranger.reply()  # sent when its deadline passes
            assert (
                refusal["error"] == "unauthorized" and "no AUTH within 0.3 s" in refusal["message"]
            )
            assert await closed_by_server(stranger)
            # the member's deadline passed first: authenticated, it stays
            assert await member.call(op="PING") == {"ok": True}
            assert len(srv.connections) == 1
        finally:
            await member.close()
            await stranger.close()
