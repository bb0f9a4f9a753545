"""TLS: the server with an ssl context, the Python client's ssl=, and the CLI flags."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

import wonderq
from broker.config import Config
from broker.server import Server
from tests.conftest import one_backend, one_loop
from tests.support import BrokerProcess, CertFiles, LineClient


@one_backend  # builds its own in-memory Server
async def test_tls_round_trip_and_plain_text_is_refused(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0, token="tls-token-0123456789")
    async with Server(config, ssl=test_cert.server_context()) as srv:
        client_ssl = test_cert.client_context()
        async with await wonderq.connect(
            "127.0.0.1", srv.port, ssl=client_ssl, token="tls-token-0123456789"
        ) as client:
            mid = await client.put("secure", {"card": "4111"})
            (msg,) = await client.get("secure")
            assert msg.id == mid and msg.body == {"card": "4111"}
            await msg.ack()
        # a plain-text client gets no reply: its bytes are not a TLS handshake
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            writer.write(b'{"op":"PING"}\n')
            await writer.drain()
            async with asyncio.timeout(10):
                data = await reader.read(1000)
            assert b'"ok"' not in data
        finally:
            writer.close()
        # a client that does not trust the certificate fails the handshake
        with pytest.raises((ssl.SSLError, wonderq.WonderQError)):
            await wonderq.connect("127.0.0.1", srv.port, ssl=ssl.create_default_context())


@one_backend  # builds its own in-memory Server
async def test_tls_raw_lines_and_shorthand(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", srv.port, ssl=test_cert.client_context(), server_hostname="localhost"
        )
        async with LineClient(reader, writer) as c:
            assert (await c.line("PUT q over tls"))["ok"] is True
            got = await c.line("GET q")
            assert [m["body"] for m in got["messages"]] == ["over tls"]


@one_backend  # its brokers are processes
@one_loop
async def test_cli_tls_flags(test_cert: CertFiles, tmp_path: Path) -> None:
    args = ("--tls-cert", str(test_cert.cert), "--tls-key", str(test_cert.key))
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *args) as broker:
        async with await wonderq.connect(
            "127.0.0.1", broker.port, ssl=test_cert.client_context()
        ) as client:
            await client.ping()
        assert await broker.stop() == 0


@one_backend  # builds its own in-memory Server
async def test_sync_client_with_tls_and_token(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0, token="sync-token-0123456789")
    async with Server(config, ssl=test_cert.server_context()) as srv:

        def script() -> None:
            context = test_cert.client_context()
            with wonderq.connect_sync(
                "127.0.0.1", srv.port, ssl=context, token="sync-token-0123456789"
            ) as client:
                client.put("s", "synced")
                (msg,) = client.get("s")
                assert msg.body == "synced"
                msg.ack()

        async with asyncio.timeout(20):
            await asyncio.to_thread(script)
