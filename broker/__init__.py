"""WonderQ: an asyncio message broker with a newline-delimited JSON protocol."""

__version__ = "0.1.0"
