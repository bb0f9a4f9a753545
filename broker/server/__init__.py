"""The thin asyncio shell around the backend: listener and connections."""

from broker.server.server import Server

__all__ = ["Server"]
