"""The ``ssl`` option: both clients speak TLS and verify the server's certificate.

The broker has no TLS yet, so a fake TLS server on loopback answers; its
self-signed certificate is made with the ``openssl`` command (skipped without it).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

import wonderq

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_port(certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    """A TLS server that answers every request with ``ok``."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while line := await reader.readline():
            request = msgspec.json.decode(line)
            writer.write(msgspec.json.encode({"ok": True, "rid": request["rid"]}) + b"\n")

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_async_client_speaks_tls_and_checks_the_certificate(
    tls_port: int, certificate: tuple[Path, Path]
) -> None:
    trusting = ssl.create_default_context(cafile=certificate[0])
    async with asyncio.timeout(10):
        async with await wonderq.connect("127.0.0.1", tls_port, ssl=trusting) as client:
            await client.ping()
        with pytest.raises(wonderq.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
            await wonderq.connect("127.0.0.1", tls_port, ssl=ssl.create_default_context())


async def test_sync_client_speaks_tls_and_checks_the_certificate(
    tls_port: int, certificate: tuple[Path, Path]
) -> None:
    def script() -> None:
        trusting = ssl.create_default_context(cafile=certificate[0])
        with wonderq.connect_sync("127.0.0.1", tls_port, ssl=trusting) as client:
            client.ping()
        with pytest.raises(wonderq.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
            wonderq.connect_sync("127.0.0.1", tls_port, ssl=ssl.create_default_context())

    async with asyncio.timeout(10):
        await asyncio.to_thread(script)
