"""Awaiting a log line: a handler on one logger that wakes the test when a record arrives.

Owns: ``LogWatch`` (every record of a logger, ``wait_for(text)`` bounded in time)
and ``watching(name, level)``, which attaches one for a block and lowers the
logger's level to ``level`` meanwhile. Never: polls, or leaves a handler or a
level changed after its block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator


class LogWatch(logging.Handler):
    """Every record of a logger, and a way to await one (records may come from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._loop = loop
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._changed.set)

    def messages(self, text: str = "") -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]

    async def wait_for(self, text: str, timeout: float = 10.0) -> logging.LogRecord:
        """The first record whose message contains ``text``, once there is one."""
        async with asyncio.timeout(timeout):
            while True:  # bounded by the timeout; wakes on every new record
                self._changed.clear()
                for record in list(self.records):
                    if text in record.getMessage():
                        return record
                await self._changed.wait()


@contextlib.asynccontextmanager
async def watching(name: str, level: int = logging.DEBUG) -> AsyncIterator[LogWatch]:
    """A ``LogWatch`` on logger ``name`` for the block, the logger at ``level`` meanwhile."""
    watch = LogWatch(asyncio.get_running_loop())
    logger = logging.getLogger(name)
    saved = logger.level
    logger.addHandler(watch)
    logger.setLevel(level)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(saved)
