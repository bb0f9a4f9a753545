"""Backends: where queue state lives (in memory today), behind one interface."""

from broker.backend.base import Backend, Replies, ReplySink, StatsProvider
from broker.backend.memory import MemoryBackend

__all__ = ["Backend", "MemoryBackend", "Replies", "ReplySink", "StatsProvider"]
