"""A request body over --max-line is refused with 413 ``too_large`` without being read whole."""

from __future__ import annotations

import asyncio

import msgspec

from tests.http.support import TIMEOUT_S, client_for, running_broker


async def raw_exchange(
    port: int, head: bytes, body_parts: list[bytes]
) -> tuple[str, dict[str, str]]:
    """Send ``head`` and ``body_parts`` (never finishing the body), read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(TIMEOUT_S):
            status = (await reader.readline()).decode().strip()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = msgspec.json.decode(await reader.readexactly(length))
        return status, body
    finally:
        writer.close()


async def test_a_content_length_over_the_limit_is_refused_before_the_body() -> None:
    async with running_broker(max_line=1024) as broker:
        head = (
            b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
        )
        status, body = await raw_exchange(broker.http_port, head, [b'{"body":"'])
        assert status == "HTTP/1.1 413 Request Entity Too Large"
        assert body["error"] == "too_large" and "50000000" in body["message"]
        assert "max-line" in body["message"]


async def test_a_chunked_body_is_refused_once_the_bytes_read_pass_the_limit() -> None:
    async with running_broker(max_line=1024) as broker:
        head = (
            b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"  # 1 KiB per chunk, and never the last one
        status, body = await raw_exchange(broker.http_port, head, [chunk, chunk])
        assert status.startswith("HTTP/1.1 413")
        assert body["error"] == "too_large" and "max-line" in body["message"]


async def test_a_body_at_the_limit_is_taken() -> None:
    async with running_broker(max_line=1024) as broker, client_for(broker.base) as api:
        body = b'{"body":"' + b"x" * (1024 - 11) + b'"}'
        assert len(body) == 1024
        assert (await api.post("/v1/queues/q/messages", data=body)).status == 201
        over = await api.post("/v1/queues/q/messages", data=body + b" ")
        assert (over.status, over.json["error"]) == (413, "too_large")
