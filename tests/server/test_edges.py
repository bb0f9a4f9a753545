"""Edges (rows 11, 12, 14 of issue 18): TLS handshakes count and time out, TCP keepalive
on every connection, and an idle timeout by default."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

import wonderq
from broker.cli import build_parser
from broker.cli.serve import config_from_args
from broker.config import Config
from broker.server import Server
from broker.server import tls as tls_module
from broker.server.idle import IdleTracker
from broker.server.sockets import (
    KEEPALIVE_IDLE_S,
    KEEPALIVE_INTERVAL_S,
    KEEPALIVE_LIMIT_S,
    KEEPALIVE_PROBES,
)
from tests.conftest import one_backend
from tests.support import CertFiles, LineClient, closed_by_server


async def _stalled(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection that never starts its TLS handshake."""
    return await asyncio.open_connection("127.0.0.1", port)


async def _eof(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass
    return True


# ------------------------------------------------------------ TLS (row 11)


@one_backend  # builds its own in-memory Server
async def test_tls_handshakes_in_progress_count_against_max_connections(
    test_cert: CertFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_module, "HANDSHAKE_S", 0.5)
    config = Config(host="127.0.0.1", port=0, max_connections=2)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        stalled = [await _stalled(srv.port) for _ in range(2)]
        try:
            probe = LineClient(*await asyncio.open_connection("127.0.0.1", srv.port))
            # the limit is reached by the two handshakes: refused (closed, no line: TLS port)
            assert await closed_by_server(probe)
            await probe.close()
            assert srv.refused == 1 and srv.connection_count() == 2
            for reader, _ in stalled:  # their handshakes time out: their slots come back
                assert await _eof(reader)
        finally:
            for _, writer in stalled:
                writer.close()
        await _ping_when_admitted(srv, test_cert)


async def _ping_when_admitted(srv: Server, cert: CertFiles, attempts: int = 50) -> None:
    """PING over TLS, connecting again (bounded) while the server has not yet seen the
    handshakes it dropped end (the client sees their EOF a turn of the loop earlier)."""
    for attempt in range(attempts):
        try:
            async with await wonderq.connect(
                "127.0.0.1", srv.port, ssl=cert.client_context()
            ) as client:
                await client.ping()
                return
        except wonderq.ConnectionLost:
            if attempt == attempts - 1:
                raise


@one_backend  # builds its own in-memory Server
async def test_a_stalled_tls_handshake_times_out(
    test_cert: CertFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_module, "HANDSHAKE_S", 0.3)
    config = Config(host="127.0.0.1", port=0)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        reader, writer = await _stalled(srv.port)
        try:
            assert await _eof(reader)  # closed by the server, never having spoken
        finally:
            writer.close()
        await _ping_when_admitted(srv, test_cert)


@one_backend  # builds its own in-memory Server
async def test_a_server_stopping_drops_handshakes_in_progress(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0)
    srv = Server(config, ssl=test_cert.server_context())
    await srv.start()
    reader, writer = await _stalled(srv.port)
    try:
        async with await wonderq.connect(
            "127.0.0.1", srv.port, ssl=test_cert.client_context()
        ) as client:
            await client.ping()  # the handshake of the stalled one is surely under way by now
        async with asyncio.timeout(10):
            await srv.close()
        assert await _eof(reader)
        assert srv.connection_count() == 0
    finally:
        writer.close()


# ------------------------------------------------------- keepalive (row 12)


def _server_socket(srv: Server) -> socket.socket:
    (conn,) = srv.connections
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    assert sock is not None
    return sock  # type: ignore[no-any-return]


async def _assert_keepalive(srv: Server) -> None:
    sock = _server_socket(srv)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_PROBES


async def test_every_connection_has_tcp_keepalive(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        assert await c.call(op="PING") == {"ok": True}
        await _assert_keepalive(server)
    assert KEEPALIVE_LIMIT_S == 60  # what the docs promise


@one_backend  # builds its own in-memory Server
async def test_tls_connections_have_tcp_keepalive_too(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0)
    async with (
        Server(config, ssl=test_cert.server_context()) as srv,
        await wonderq.connect("127.0.0.1", srv.port, ssl=test_cert.client_context()) as client,
    ):
        await client.ping()
        await _assert_keepalive(srv)


# ---------------------------------------------------- idle by default (row 14)


def test_the_idle_timeout_is_on_by_default_and_0_turns_it_off() -> None:
    assert Config().idle_timeout_s == 600.0
    assert Server(Config())._idle is not None
    off = config_from_args(build_parser("serve").parse_args(["serve", "--idle-timeout", "0"]))
    assert off.idle_timeout_s == 0 and Server(off)._idle is None
    with pytest.raises(ValueError, match="idle-timeout must be >= 0"):
        Config(idle_timeout_s=-1)


@one_backend  # builds its own in-memory Server
async def test_a_line_sent_a_byte_at_a_time_is_closed_by_the_idle_timeout() -> None:
    """The default (made short here) closes a connection that only dribbles half a line."""
    config = Config(host="127.0.0.1", port=0, idle_timeout_s=0.3)
    async with Server(config) as srv, await LineClient.connect(srv.port) as c:
        closed = asyncio.ensure_future(closed_by_server(c, timeout=10))
        try:
            for byte in b'{"op":"PING"':  # never the newline
                if closed.done():
                    break
                c.writer.write(bytes([byte]))
                await asyncio.wait({closed}, timeout=0.05)
            assert await closed
        finally:
            closed.cancel()


def test_idle_deadlines_follow_the_activity_each_key_stamps() -> None:
    """The tracker asks for a key's last activity only when its deadline comes."""
    idle: IdleTracker[str] = IdleTracker(10.0)
    active_at = {"a": 0.0, "b": 0.0, "c": 0.0}
    asked: list[str] = []

    def last_active(key: str) -> float:
        asked.append(key)
        return active_at[key]

    for key in active_at:
        idle.touch(key, 0.0)
    active_at["a"] = 4.0  # a request at 4: nothing is paid for it now
    assert idle.expired(9.9, last_active) == [] and asked == []
    assert idle.expired(10.0, last_active) == ["b", "c"]  # a moved to 14, exactly
    assert idle.next_deadline() == 14.0 and len(idle) == 1
    assert idle.expired(13.9, last_active) == [] and idle.expired(14.0, last_active) == ["a"]
    assert idle.next_deadline() is None


def test_forgotten_keys_do_not_pile_up_in_the_heap() -> None:
    idle: IdleTracker[int] = IdleTracker(600.0)
    for key in range(10_000):  # connections that open and close
        idle.touch(key, float(key))
        idle.forget(key)
    assert len(idle) == 0 and len(idle._heap) <= 64
    assert idle.next_deadline() is None
