"""A raw line client for protocol tests: exact bytes out, parsed replies in.

Owns: one loopback connection speaking the line protocol by hand. Never: waits
for a reply without a bound (REPLY_TIMEOUT_S), or hides what the server sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

REPLY_TIMEOUT_S = 5.0


class LineClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> LineClient:
        reader, writer = await asyncio.open_connection(host, port, limit=16 * 1024 * 1024)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, **request: Any) -> None:
        await self.send_raw(msgspec.json.encode(request) + b"\n")

    async def reply(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        if not line:
            raise ConnectionResetError("server closed the connection")
        obj = msgspec.json.decode(line)
        assert isinstance(obj, dict), line
        return obj

    async def call(self, **request: Any) -> dict[str, Any]:
        await self.send(**request)
        return await self.reply()

    async def line(self, text: str | bytes) -> dict[str, Any]:
        data = text.encode() if isinstance(text, str) else text
        await self.send_raw(data + b"\n")
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> LineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def closed_by_server(client: LineClient, timeout: float = REPLY_TIMEOUT_S) -> bool:
    """True once the server has closed the connection: EOF, or a reset (the server
    closed it while our later bytes were on their way, so its kernel answered RST)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                line = await client.reader.readline()
            except ConnectionResetError:
                return True
            if not line:
                return True


async def offer_until_unread(
    writer: asyncio.StreamWriter, chunk: bytes, max_chunks: int, within_s: float = 3.0
) -> int:
    """Write ``chunk`` again and again (``max_chunks`` at most) until the peer stops
    reading and ``drain()`` blocks; the bytes offered by then, after ``within_s``.

    Fails if the peer read every chunk: it kept reading although nobody read its
    replies.
    """
    offered = 0
    try:
        async with asyncio.timeout(within_s):
            for _ in range(max_chunks):
                writer.write(chunk)
                offered += len(chunk)
                await writer.drain()
    except TimeoutError:
        return offered
    raise AssertionError("the server kept reading although its replies were not read")
