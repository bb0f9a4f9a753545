"""A self-signed test certificate for 127.0.0.1 and localhost, made by the openssl CLI.

Owns: making the certificate and the server and client ``ssl`` contexts that use
it. Never: reaches beyond loopback, or skips when ``CI=true`` (see tools.py).
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from tests.support.tools import require_tool


class CertFiles:
    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(folder: Path) -> CertFiles:
    """A one-day P-256 certificate for IP 127.0.0.1 and DNS localhost, in ``folder``."""
    openssl = require_tool("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return CertFiles(cert, key)
