"""The server suite runs against every backend (``backend_kind``: memory, then Redis)."""

import pytest


@pytest.fixture(autouse=True)
def _every_backend(backend_kind: str) -> str:
    return backend_kind
