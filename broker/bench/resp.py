"""Asking a loopback Redis something, without a client library: one command, one reply.

Owns: encoding one command in RESP over a short-lived socket and reading its
reply whole (a simple string, an error, an integer, a bulk string or an array
of those), and the two readings the bench and the tests take from
``INFO``: its fields as a dict, and the CPU seconds Redis used
(``used_cpu_sys`` + ``used_cpu_user``, the server's own count, so it needs no
PID). Used where redis-py may be missing (``wonderq bench`` without the
``redis`` extra) and by the tests' fixtures.
Must never: connect anywhere but 127.0.0.1, or wait without a timeout.
"""

from __future__ import annotations

import socket
from typing import Any, Final

HOST: Final = "127.0.0.1"
TIMEOUT_S: Final = 5.0


class RespError(Exception):
    """Redis answered with an error (``-ERR ...``)."""


def encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def command(port: int, *args: str, timeout_s: float = TIMEOUT_S) -> Any:
    """Run one command on the Redis at ``port``: its reply (a string, an integer, None
    for a nil, or a list of those); RespError for an error reply, OSError if
    unreachable."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as s:
        s.sendall(encode(*args))
        data = b""
        while True:
            parsed = _parse(data, 0)
            if parsed is not None:
                reply = parsed[0]
                if isinstance(reply, RespError):
                    raise reply
                return reply
            chunk = s.recv(65536)
            if not chunk:
                raise OSError(f"redis on port {port} closed the connection mid-reply")
            data += chunk


def _parse(data: bytes, pos: int) -> tuple[Any, int] | None:
    """The reply starting at ``pos`` and where it ends, or None if more data is needed."""
    end = data.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, text, after = data[pos : pos + 1], data[pos + 1 : end].decode(), end + 2
    if kind == b"+":
        return text, after
    if kind == b"-":
        return RespError(text), after
    if kind == b":":
        return int(text), after
    if kind == b"$":
        n = int(text)
        if n < 0:
            return None, after
        if len(data) < after + n + 2:
            return None
        return data[after : after + n].decode(), after + n + 2
    if kind == b"*":
        items: list[Any] = []
        for _ in range(max(0, int(text))):
            parsed = _parse(data, after)
            if parsed is None:
                return None
            items.append(parsed[0])
            after = parsed[1]
        return items, after
    raise RespError(f"unexpected reply {data[pos : pos + 40]!r}")


def info(port: int, section: str = "") -> dict[str, str]:
    """``INFO section`` of the Redis at ``port`` (``CLUSTER INFO`` with section
    ``cluster-info``): its ``key:value`` lines as a dict."""
    args = ("CLUSTER", "INFO") if section == "cluster-info" else ("INFO", section)
    text = command(port, *[a for a in args if a])
    out: dict[str, str] = {}
    for line in str(text).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def cpu_s(port: int) -> float:
    """CPU seconds the Redis at ``port`` used since it started (user + system)."""
    cpu = info(port, "cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
