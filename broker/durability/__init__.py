"""The durable store: an append-only log of engine state changes, replayed on start.

``--data-dir`` turns it on; without it the broker stays in memory and the
in-memory hot path is exactly what it was (nothing here runs).
"""
