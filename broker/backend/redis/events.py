"""The node's channel: how Redis wakes a node, never by polling.

Owns: one pub/sub subscription to ``wq:wake:<incarnation>``, on which the
library publishes ``d <tag prefix>`` (a waiting GET of this node was served:
its delivery waits in Redis, collect it) and ``t <tag prefix> <ms> <queue>``
(a queue with waiting GETs here next needs a tick at that Redis time). Plain
PUBLISH reaches a subscriber on any server of a Redis Cluster. The link is
checked with a PING after 2 s of silence and opened again when it breaks (on
the next server, at once if the broken link had worked);
after every (re)subscription ``on_subscribed`` runs, so a node that may have
missed messages collects its deliveries and ticks its queues.
Must never: apply anything itself (the backend's callbacks do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("wonderq.redis")

_QUIET_S = 2.0  # silence after which the link is checked
_RETRY_S = 0.2


class Listener:
    def __init__(
        self,
        connect: Callable[[int], Any],
        on_message: Callable[[str], None],
        on_subscribed: Callable[[], None],
        timeout_s: float,
    ) -> None:
        self._connect = connect  # attempt number -> a plain redis-py client to subscribe on
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._timeout_s = timeout_s
        self._channel = ""
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()  # subscribed to the current channel

    def follow(self, channel: str) -> None:
        """Listen on ``channel`` from now on (a new incarnation has a new channel)."""
        if channel != self._channel:
            self._channel = channel
            self.ready.clear()
            self._changed.set()

    async def run(self) -> None:
        attempt = 0
        while True:
            client = self._connect(attempt)
            try:
                await self._listen(client)
            except (RedisError, OSError, TimeoutError) as exc:
                if attempt == 0 or attempt % 50 == 0:
                    log.warning("wake channel lost (%s); subscribing again", exc)
                attempt += 1
                if not self.ready.is_set():  # a link that worked: the next server at once
                    await asyncio.sleep(_RETRY_S)
            finally:
                self.ready.clear()
                await client.aclose()

    async def _listen(self, client: Any) -> None:
        pubsub = client.pubsub()
        try:
            while True:
                channel = self._channel
                self._changed.clear()
                async with asyncio.timeout(self._timeout_s):
                    await pubsub.subscribe(channel)
                self.ready.set()
                self._on_subscribed()
                await self._read(pubsub)
                async with asyncio.timeout(self._timeout_s):
                    await pubsub.unsubscribe(channel)
        finally:
            await pubsub.aclose()

    async def _read(self, pubsub: Any) -> None:
        """Until the channel changes: messages, and a PING after each quiet spell (a link
        that does not answer it within the timeout is taken as broken)."""
        loop = asyncio.get_running_loop()
        heard_at = loop.time()
        pinged_at: float | None = None
        while not self._changed.is_set():
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.25)
            now = loop.time()
            if msg is not None:
                heard_at, pinged_at = now, None
                if msg.get("type") == "message" and msg.get("channel") == self._channel.encode():
                    self._on_message(msg["data"].decode())
            elif pinged_at is not None:
                if now - pinged_at > self._timeout_s:
                    raise TimeoutError("the wake channel did not answer a PING")
            elif now - heard_at > _QUIET_S:
                async with asyncio.timeout(self._timeout_s):
                    await pubsub.ping()
                pinged_at = now
