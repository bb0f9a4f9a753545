"""The HTTP API: the broker's operations as JSON over HTTP, described by OpenAPI.

A thin asyncio shell beside the TCP server, on the same loop and backend: it
builds the protocol's typed requests, runs them through ``Backend.execute``
and encodes the typed replies. See ``app.py``.
"""

from broker.http.app import HttpApi, Phase

__all__ = ["HttpApi", "Phase"]
