"""Newline framing with a hard line limit (sans-IO).

Owns: turning a stream of bytes into complete lines. Bytes go in with
``feed()``; complete lines come out, in order, each either the line's bytes
(without ``\\n`` or a trailing ``\\r``) or ``TOO_LONG``. A line longer than
``max_line`` yields one ``TOO_LONG`` as soon as the limit is passed, and the
rest of it is discarded up to the next newline without being buffered, so a
peer can never make the framer hold more than ``max_line`` bytes. A caller
with a lower limit for now (a connection that has not authenticated) calls
``drop_held_over(limit)`` after each feed: an unfinished line past it is
dropped, and the rest of it discarded, the same way.
Must never: do IO, decode JSON, or buffer more than ``max_line`` bytes.
"""

from __future__ import annotations

from typing import Final


class _TooLong:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TOO_LONG"

    def __len__(self) -> int:
        return 0  # none of the line is kept


TOO_LONG: Final = _TooLong()

Frame = bytes | _TooLong


class LineFramer:
    __slots__ = ("_buf", "_discarding", "buffered", "max_line")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False
        #: bytes of an unfinished line held (never more than ``max_line``); an attribute,
        #: not a property: the connection reads it after every read
        self.buffered = 0

    def drop_held_over(self, limit: int) -> bool:
        """Drop the unfinished line if it is longer than ``limit`` bytes, and discard the
        rest of it as it arrives; True if it was dropped (the caller reports it)."""
        if len(self._buf) <= limit + 1:  # +1: a '\r' may precede '\n'
            return False
        self.drop_held()
        return True

    def drop_held(self) -> None:
        """Forget the unfinished line (its memory too) and discard the rest of it."""
        self._buf = bytearray()
        self.buffered = 0
        self._discarding = True

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
            self.buffered = 0
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
            self.drop_held()
            out.append(TOO_LONG)
        else:
            self._buf += part
            self.buffered = len(self._buf)

    def _emit(self, line: bytes, out: list[Frame]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            out.append(TOO_LONG)
        elif line and not line.isspace():
            out.append(line)
