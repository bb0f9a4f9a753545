"""Sans-IO core of one client connection: framing, request ids and reply matching.

Owns: turning requests into bytes, bytes into replies, and knowing which request
each reply answers. Must never: touch a socket, an event loop or a clock; both
clients (asyncio and blocking) drive the same object and only move bytes.

Rules this object keeps (protocol.md sections 1 and 2):

- Every request gets an integer ``rid``; the reply carrying it answers it.
- Replies come in request order, except a ``GET`` with ``wait`` > 0. A reply
  without ``rid`` (the server could not read our line, e.g. ``line_too_long``)
  therefore answers the oldest unanswered request that is not a waiting GET.
- A request whose caller gave up (cancelled, timed out) is *abandoned*: its
  reply is dropped when it comes, and any message a late GET reply leased to us
  is given straight back with ``NACK``, so nothing stays leased to nobody.
- Abandoning a GET that may still wait on the server also queues
  ``CANCEL`` for it. The server runs a connection's requests in order, so
  from the ``CANCEL`` on, that GET can take nothing: a ``NACK`` queued after
  it cannot hand its message straight back to a GET nobody reads (which would
  cost the message an attempt). Messages the GET got before the ``CANCEL``
  took effect come in its reply, and are released like any late delivery.
- A reply line longer than ``max_line``, a reply that is not a JSON object
  with a boolean ``ok``, or a reply that answers nothing, is a
  ``ProtocolViolation``: the connection can no longer be trusted.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from .errors import ProtocolViolation

Request = dict[str, Any]
"""A request object without ``rid``, as built by ``wonderq.commands``."""

Reply = dict[str, Any]
"""A decoded reply object (``ok`` is always a bool)."""

DEFAULT_MAX_REPLY_LINE: Final = 64 * 1024 * 1024
"""Longest reply line a client buffers (bytes, without the newline)."""


def is_waiting_get(request: Request) -> bool:
    """True if the server may answer this request out of order (a GET with wait > 0)."""
    if request.get("op") != "GET":
        return False
    wait = request.get("wait")
    return isinstance(wait, int | float) and wait > 0


class ClientProtocol:
    """The state of one client connection, without IO.

    ``send()`` a request, then write ``data_to_send()``; feed what the socket
    reads to ``receive_data()``, which returns ``(rid, reply)`` for every
    request that a reply answered (and queues ``NACK`` requests for late
    deliveries to abandoned GETs: write ``data_to_send()`` after it, too).
    ``abandon()`` may queue a ``CANCEL``: write ``data_to_send()`` after it.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_REPLY_LINE) -> None:
        self._max_line = max_line
        self._next_rid = 1
        self._out: list[bytes] = []
        self._in = bytearray()
        self._in_order: dict[int, None] = {}  # unanswered rids answered in order, oldest first
        self._unanswered: set[int] = set()
        self._abandoned: set[int] = set()
        self._gets: set[int] = set()  # unanswered GETs
        self._waiting_gets: set[int] = set()  # unanswered GETs with wait > 0
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    @property
    def unanswered(self) -> int:
        """How many requests have been sent and not answered yet (abandoned ones included)."""
        return len(self._unanswered)

    @property
    def wants_write(self) -> bool:
        """True if ``data_to_send()`` has bytes to give."""
        return bool(self._out)

    def send(self, request: Request) -> int:
        """Queue ``request`` for sending and return its rid.

        Raises ``TypeError`` (from msgspec) if a field, e.g. a body, cannot be
        encoded as JSON; nothing is queued then.
        """
        rid = self._next_rid
        line = self._encoder.encode({**request, "rid": rid})
        self._next_rid += 1
        self._out.append(line)
        self._out.append(b"\n")
        self._unanswered.add(rid)
        if request.get("op") == "GET":
            self._gets.add(rid)
        if is_waiting_get(request):
            self._waiting_gets.add(rid)
        else:
            self._in_order[rid] = None
        return rid

    def abandon(self, rid: int) -> None:
        """Forget the caller of ``rid``: drop its reply, and release what it leases.

        For a GET that may be waiting on the server, this also queues
        ``{"op":"CANCEL","get":rid}`` (its reply is dropped too), so the server
        ends it at once instead of leasing messages to it for up to ``wait`` s.
        """
        if rid not in self._unanswered or rid in self._abandoned:
            return
        self._abandoned.add(rid)
        if rid in self._waiting_gets:
            self._abandoned.add(self.send({"op": "CANCEL", "get": rid}))

    def release(self, ids: list[str]) -> None:
        """Give leased messages back with ``NACK``, without awaiting (or reading) the replies."""
        for msg_id in ids:
            self._abandoned.add(self.send({"op": "NACK", "id": msg_id}))

    def release_delivery(self, reply: Reply) -> None:
        """Release what a GET reply leased to a caller that gave up before reading it."""
        messages = reply.get("messages")
        if not reply["ok"] or not isinstance(messages, list):
            return
        ids = [m.get("id") for m in messages if isinstance(m, dict)]
        self.release([i for i in ids if isinstance(i, str)])

    def data_to_send(self) -> bytes:
        """Return (and forget) every byte queued since the last call."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def receive_data(self, data: bytes) -> list[tuple[int, Reply]]:
        """Feed bytes read from the server; return the replies they completed.

        Raises ``ProtocolViolation`` if the server broke the protocol.
        """
        if self._in:
            if b"\n" not in data:
                self._in += data
                self._check_partial()
                return []
            self._in += data
            chunk = bytes(self._in)
            self._in.clear()
        else:
            chunk = data
        replies: list[tuple[int, Reply]] = []
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if end - start > self._max_line:
                raise ProtocolViolation(f"reply line longer than {self._max_line} bytes")
            self._receive_line(view[start:end], replies)
            start = end + 1
        if start < len(chunk):
            self._in += view[start:]
            self._check_partial()
        return replies

    def _check_partial(self) -> None:
        if len(self._in) > self._max_line:
            raise ProtocolViolation(f"reply line longer than {self._max_line} bytes")

    def _receive_line(self, line: memoryview, replies: list[tuple[int, Reply]]) -> None:
        try:
            reply = self._decoder.decode(line)
        except msgspec.DecodeError as exc:
            if not bytes(line).strip():
                return  # an empty line answers nothing
            raise ProtocolViolation(f"reply is not JSON: {exc}") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise ProtocolViolation("reply is not a JSON object with a boolean 'ok'")
        rid = self._match(reply.get("rid"))
        self._unanswered.discard(rid)
        self._in_order.pop(rid, None)
        is_get = rid in self._gets
        self._gets.discard(rid)
        self._waiting_gets.discard(rid)
        if rid not in self._abandoned:
            replies.append((rid, reply))
            return
        self._abandoned.discard(rid)
        if is_get:
            self.release_delivery(reply)

    def _match(self, rid: object) -> int:
        if rid is None:
            if not self._in_order:
                raise ProtocolViolation("reply without 'rid' while no request awaits one")
            return next(iter(self._in_order))
        if type(rid) is not int or rid not in self._unanswered:
            raise ProtocolViolation(f"reply with 'rid' {rid!r} answers no request")
        return rid
