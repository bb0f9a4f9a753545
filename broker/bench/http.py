"""The bench's HTTP adapter: WonderQ's HTTP API driven like its TCP protocol.

Owns: speaking HTTP/1.1 on one keep-alive connection behind the bench's three
operations (``adapters.Adapter``): ``put`` is ``POST /v1/queues/{q}/messages``
(one message, or a batch), ``get(k)`` is ``POST /v1/queues/{q}/receive`` with
``max`` k and a ``wait`` (a long poll), ``ack`` is ``POST /v1/ack`` with the
receipts the receive returned. Requests are pipelined as the line adapters do
(HTTP/1.1 answers them in order), so the figures are what the HTTP API costs
next to the TCP protocol, not what a client library costs: the raw requests are
built once per shape and the replies parsed by their ``Content-Length``.
Must never: read a body before its headers say how long it is, or swallow a
status other than 2xx (the run fails on it).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import msgspec

from broker.bench.adapters import WAIT_S, Adapter, Sink


class _Msg(msgspec.Struct, gc=False):
    receipt: str
    body: msgspec.Raw


class _Received(msgspec.Struct, gc=False):
    messages: list[_Msg]


class _Acked(msgspec.Struct, gc=False):
    acked: int
    not_leased: list[str]
    not_found: list[str]


_received: Final = msgspec.json.Decoder(_Received)
_acked: Final = msgspec.json.Decoder(_Acked)
_HEAD_END: Final = b"\r\n\r\n"


def _request(path: bytes, body: bytes) -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: wonderq\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class Http(Adapter):
    name = "http"

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        super().__init__(sink, queue, slot)
        self._buf = bytearray()
        self._pending: deque[tuple[str, int]] = deque()  # (kind, messages) in request order
        self._put_path = f"/v1/queues/{queue}/messages".encode()
        self._receive_path = f"/v1/queues/{queue}/receive".encode()
        self._gets: dict[int, bytes] = {}

    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        if keys is None:
            items = [b'{"body":' + b + b"}" for b in bodies]
        else:
            items = [
                b'{"key":"' + k.encode() + b'","body":' + b + b"}"
                for k, b in zip(keys, bodies, strict=True)
            ]
        body = items[0] if len(items) == 1 else b'{"messages":[' + b",".join(items) + b"]}"
        self.send(_request(self._put_path, body))
        self._pending.append(("put", len(bodies)))

    def get(self, k: int) -> None:
        request = self._gets.get(k)
        if request is None:
            body = b'{"max":%d,"wait":%d}' % (k, WAIT_S)
            request = self._gets[k] = _request(self._receive_path, body)
        self.send(request)
        self._pending.append(("get", k))

    def ack(self, tokens: list[Any]) -> None:
        self.send(_request(b"/v1/ack", msgspec.json.encode({"receipts": tokens})))
        self._pending.append(("ack", len(tokens)))

    def parse(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while self._pending:
            head_end = buf.find(_HEAD_END, pos)
            if head_end < 0:
                break
            head = bytes(buf[pos:head_end])
            length = _content_length(head)
            end = head_end + 4 + length
            if len(buf) < end:
                break
            self._reply(head, bytes(buf[head_end + 4 : end]))
            pos = end
        del buf[:pos]

    def _reply(self, head: bytes, body: bytes) -> None:
        kind, n = self._pending.popleft()
        sink = self.sink
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")):
            sink.on_error(f"http: {kind} answered {head[:40]!r}: {body[:200]!r}")
        elif kind == "put":
            sink.on_put(n)
        elif kind == "get":
            msgs = _received.decode(body).messages
            sink.on_got(self, [(m.receipt, bytes(m.body)) for m in msgs])
        else:
            reply = _acked.decode(body)
            if reply.not_leased or reply.not_found:
                sink.on_error(f"http: ACK failed for some receipts: {body[:200]!r}")
            sink.on_acked(self, reply.acked)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0
