"""A request body over --max-line is refused with 413 ``too_large`` without being read whole."""

from __future__ import annotations

import asyncio

from tests.http.support import TIMEOUT_S, Response, client_for, running_broker


async def raw_exchange(port: int, head: bytes, body_parts: list[bytes]) -> Response:
    """Send ``head`` and ``body_parts`` (never finishing the body), read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(TIMEOUT_S):
            status = int((await reader.readline()).split(b" ")[1])
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name] = value.strip()
            body = await reader.readexactly(int(headers["Content-Length"]))
        return Response(status, headers, body)
    finally:
        writer.close()


async def test_a_content_length_over_the_limit_is_refused_before_the_body() -> None:
    async with running_broker(max_line=1024) as broker, client_for(broker.base) as api:
        head = (
            b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
        )
        got = await raw_exchange(broker.http_port, head, [b'{"body":"'])
        api.check("POST", "/v1/queues/q/messages", None, got)
        assert got.status == 413
        assert got.json["error"] == "too_large" and "50000000" in got.json["message"]
        assert "max-line" in got.json["message"]


async def test_a_chunked_body_is_refused_once_the_bytes_read_pass_the_limit() -> None:
    async with running_broker(max_line=1024) as broker, client_for(broker.base) as api:
        head = (
            b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"  # 1 KiB per chunk, and never the last one
        got = await raw_exchange(broker.http_port, head, [chunk, chunk])
        api.check("POST", "/v1/queues/q/messages", None, got)
        assert got.status == 413
        assert got.json["error"] == "too_large" and "max-line" in got.json["message"]


async def test_a_body_at_the_limit_is_taken() -> None:
    async with running_broker(max_line=1024) as broker, client_for(broker.base) as api:
        body = b'{"body":"' + b"x" * (1024 - 11) + b'"}'
        assert len(body) == 1024
        assert (await api.post("/v1/queues/q/messages", data=body)).status == 201
        over = await api.post("/v1/queues/q/messages", data=body + b" ")
        assert (over.status, over.json["error"]) == (413, "too_large")
