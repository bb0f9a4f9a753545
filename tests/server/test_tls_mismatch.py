"""A client that speaks plain text (or plain HTTP) to the TLS port: the broker's log says so."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from broker.config import Config
from broker.server import Server
from broker.server.tls import handshake_failure
from tests.support import CertFiles
from tests.support.logs import watching


@pytest.mark.parametrize(
    ("sent", "spoke"),
    [(b'{"op":"PING"}\n', "plain text"), (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plain HTTP")],
)
async def test_the_broker_logs_a_client_that_spoke_plain_text_to_its_tls_port(
    test_cert: CertFiles, sent: bytes, spoke: str
) -> None:
    async with (
        watching("wonderq.tls", logging.INFO) as lines,
        Server(Config(host="127.0.0.1", port=0), ssl=test_cert.server_context()) as srv,
    ):
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            writer.write(sent)
            await writer.drain()
            line = (await lines.wait_for("TLS handshake with 127.0.0.1:")).getMessage()
        finally:
            writer.close()
    assert line.endswith(
        f"failed: the client spoke {spoke}, not TLS, to this TLS port (it must connect with "
        "TLS: the wonderq commands take --tls or --tls-ca)"
    )


def test_other_handshake_failures_are_logged_as_they_are() -> None:
    assert handshake_failure(TimeoutError()) == "TimeoutError"
    error = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    assert handshake_failure(error) == str(error)
