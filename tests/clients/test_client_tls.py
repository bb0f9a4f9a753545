"""The ``ssl`` option: both clients speak TLS and verify the server's certificate.

A fake TLS server on loopback answers, so the clients are checked on their own
(tests/server/test_tls.py runs them against the broker); its self-signed
certificate is the suite's ``test_cert``, made with the ``openssl`` command.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import msgspec
import pytest

import wonderq
from tests.clients.conftest import FakeConnection, FakeServerFactory
from tests.support import CertFiles


async def answer_ok(conn: FakeConnection) -> None:
    while line := await conn.reader.readline():
        conn.reply(msgspec.json.decode(line))


@pytest.fixture
async def tls_port(test_cert: CertFiles, fake_server: FakeServerFactory) -> AsyncIterator[int]:
    """A TLS server that answers every request with ``ok``."""
    async with fake_server(answer_ok, ssl=test_cert.server_context()) as port:
        yield port


async def test_async_client_speaks_tls_and_checks_the_certificate(
    tls_port: int, test_cert: CertFiles
) -> None:
    trusting = test_cert.client_context()
    async with asyncio.timeout(10):
        async with await wonderq.connect("127.0.0.1", tls_port, ssl=trusting) as client:
            await client.ping()
        with pytest.raises(wonderq.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
            await wonderq.connect("127.0.0.1", tls_port, ssl=ssl.create_default_context())


async def test_sync_client_speaks_tls_and_checks_the_certificate(
    tls_port: int, test_cert: CertFiles
) -> None:
    def script() -> None:
        trusting = test_cert.client_context()
        with wonderq.connect_sync("127.0.0.1", tls_port, ssl=trusting) as client:
            client.ping()
        with pytest.raises(wonderq.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
            wonderq.connect_sync("127.0.0.1", tls_port, ssl=ssl.create_default_context())

    async with asyncio.timeout(10):
        await asyncio.to_thread(script)
