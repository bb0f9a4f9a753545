"""Server and engine settings: one frozen dataclass, no IO.

Owns: every tunable limit and default, with its default value. The CLI builds a
``Config`` from flags; the engine, codec and server read it.
Must never: read files, the environment or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
FSYNC_POLICIES = ("always", "everysec", "no")


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 7878
    # engine
    lease_s: float = 30.0
    max_attempts: int = 5
    max_body: int = 256 * KIB
    max_queue_length: int | None = None
    max_batch: int = 1000
    max_get: int = 1000
    max_memory: int | None = None
    acked_history: int = 10_000
    # codec / connection
    max_line: int = 1 * MIB
    write_high_water: int = 1 * MIB
    write_low_water: int = 256 * KIB
    max_reply_bytes: int = 1 * MIB
    # durability (off unless data_dir is set)
    data_dir: str | None = None
    fsync: str = "everysec"  # always | everysec | no
    compact_min_bytes: int = 64 * MIB  # compact once the log is this big and mostly dead

    def __post_init__(self) -> None:
        checks = (
            (self.lease_s > 0, "lease must be > 0 seconds"),
            (self.max_attempts >= 1, "max-attempts must be >= 1"),
            (self.max_body >= 1, "max-body must be >= 1 byte"),
            (
                self.max_queue_length is None or self.max_queue_length >= 1,
                "max-queue-length must be >= 1",
            ),
            (self.max_batch >= 1, "max-batch must be >= 1"),
            (self.max_get >= 1, "max-get must be >= 1"),
            (self.max_memory is None or self.max_memory >= 1, "max-memory must be >= 1 byte"),
            (self.acked_history >= 0, "acked-history must be >= 0"),
            (self.max_line >= 64, "max-line must be >= 64 bytes"),
            (0 <= self.port <= 65535, "port must be 0-65535"),
            (self.fsync in FSYNC_POLICIES, "fsync must be always, everysec or no"),
            (self.compact_min_bytes >= 1, "compact-min must be >= 1 byte"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
