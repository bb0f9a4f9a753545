"""Newline framing with a hard line limit (sans-IO).

Owns: turning a stream of bytes into complete lines. Bytes go in with
``feed()``; complete lines come out, in order, each either the line's bytes
(without ``\\n`` or a trailing ``\\r``) or ``TOO_LONG``. A line longer than
``max_line`` yields one ``TOO_LONG`` as soon as the limit is passed, and the
rest of it is discarded up to the next newline without being buffered, so a
peer can never make the framer hold more than ``max_line`` bytes.
Must never: do IO, decode JSON, or buffer more than ``max_line`` bytes.
"""

from __future__ import annotations

from typing import Final


class _TooLong:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG: Final = _TooLong()

Frame = bytes | _TooLong


class LineFramer:
    __slots__ = ("_buf", "_discarding", "max_line")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held (never more than ``max_line``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        if self._discarding:
            i = data.find(b"\n")
            if i < 0:
                return out
            data = data[i + 1 :]
            self._discarding = False
        if self._buf:
            i = data.find(b"\n")
            if i < 0:
                self._hold(data, out)
                return out
            self._buf += data[:i]
            line = bytes(self._buf)
            self._buf.clear()
            self._emit(line, out)
            data = data[i + 1 :]
        lines = data.split(b"\n")
        tail = lines.pop()
        max_line = self.max_line
        append = out.append
        for line in lines:  # _emit, inlined for the common line
            if 0 < len(line) <= max_line and not line.endswith(b"\r") and not line.isspace():
                append(line)
            else:
                self._emit(line, out)
        if tail:
            self._hold(tail, out)
        return out

    def _hold(self, part: bytes, out: list[Frame]) -> None:
        if len(self._buf) + len(part) > self.max_line + 1:  # +1: a '\r' may precede '\n'
            self._buf.clear()
            self._discarding = True
            out.append(TOO_LONG)
        else:
            self._buf += part

    def _emit(self, line: bytes, out: list[Frame]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            out.append(TOO_LONG)
        elif line and not line.isspace():
            out.append(line)
