"""The in-memory backend (backend.py), its op handlers (handlers.py) and replies (views.py)."""

from broker.backend.memory.backend import Clock, MemoryBackend, log_events

__all__ = ["Clock", "MemoryBackend", "log_events"]
