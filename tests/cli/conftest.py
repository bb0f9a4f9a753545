"""CLI fixtures: the session's test TLS certificate (made once, by the openssl CLI)."""

from __future__ import annotations

from tests.hardening.conftest import test_cert

__all__ = ["test_cert"]
