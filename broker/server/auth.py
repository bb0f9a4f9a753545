"""The per-connection authentication gate (sans-IO).

Owns: whether one connection's requests may reach the backend, and the
answers to ``AUTH`` (which never reaches a backend). With no token configured
every connection is open and ``AUTH`` is answered ok, so clients may always
send it. With a token, a connection starts ``LOCKED``; the table below is the
whole behaviour. The token is compared in constant time (``hmac.compare_digest``),
and only while the connection's source may still try one (``AuthThrottle``,
shared by every connection of the server: wrong tokens count there too).

    state    input                          answer          next state
    OPEN     AUTH, no token configured      ok              OPEN
    any      AUTH, source throttled         unauthorized    REFUSED (token not compared)
    any      AUTH, right token              ok              OPEN
    any      AUTH, wrong token              unauthorized    LOCKED (REFUSED at the limit)
    OPEN     any other request              (backend)       OPEN
    LOCKED   a line too long before AUTH    line_too_long   REFUSED
    LOCKED   any other line                 unauthorized    LOCKED (REFUSED at the limit)
    REFUSED  anything                       (nothing)       REFUSED: close the connection

Must never: do IO, read the clock (``screen`` takes ``now``), log a token, or echo one back.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Sequence
from enum import Enum
from typing import Final

from broker.errors import ErrorCode, LineTooLong, Unauthorized, WonderQError
from broker.protocol.codec import Invalid, decode
from broker.protocol.framing import TOO_LONG, Frame
from broker.protocol.replies import OK, Reply
from broker.protocol.requests import Auth, Request
from broker.server.throttle import AuthThrottle

#: Failed lines (wrong token, or any request before AUTH) before the connection is closed
#: (a line too long before AUTH closes it at once).
MAX_FAILURES: Final = 3


class AuthState(Enum):
    OPEN = "open"
    LOCKED = "locked"
    REFUSED = "refused"


class Answered:
    """A request the gate answered itself (``AUTH``): its reply and rid."""

    __slots__ = ("reply", "rid")

    def __init__(self, reply: Reply, rid: str | int | None) -> None:
        self.reply = reply
        self.rid = rid


Item = Request | Invalid | Answered


def decode_before_auth(
    frames: Sequence[Frame], limit: int, max_line: int, max_batch: int
) -> list[Request | Invalid]:
    """Decode lines that arrive before AUTH: one longer than ``limit`` is not read at all
    (``line_too_long``, on which the gate closes the connection: the lines after it are
    not decoded either). Stops after an AUTH: the lines after it may be longer, once it
    succeeds."""
    out: list[Request | Invalid] = []
    for frame in frames:
        if len(frame) > limit or frame is TOO_LONG:
            why = f"line is longer than the limit before AUTH ({limit} bytes); authenticate first"
            out.append(Invalid(LineTooLong(why)))
            break
        item = decode(frame, max_line, max_batch)
        out.append(item)
        if type(item) is Auth:
            break
    return out


class AuthGate:
    __slots__ = ("_failures", "_source", "_throttle", "_token", "max_failures", "state")

    def __init__(
        self,
        token: str | None,
        max_failures: int = MAX_FAILURES,
        *,
        throttle: AuthThrottle | None = None,
        source: str = "",
    ) -> None:
        self._token = None if token is None else token.encode()
        self.max_failures = max_failures
        self._failures = 0
        self._throttle = throttle
        self._source = source  # this connection's key in the throttle
        self.state = AuthState.OPEN if token is None else AuthState.LOCKED

    def screen(self, items: Sequence[Request | Invalid], now: float = 0.0) -> list[Item]:
        """Answer or pass each item in order; stop at refusal (the rest get nothing)."""
        if self.state is AuthState.OPEN and not any(type(i) is Auth for i in items):
            return list(items)  # the fast path: nothing for the gate to do
        out: list[Item] = []
        for item in items:
            if self.state is AuthState.REFUSED:
                break
            out.append(self._one(item, now))
        return out

    def _one(self, item: Request | Invalid, now: float) -> Item:
        if type(item) is Auth:
            return self._auth(item, now)
        if self.state is AuthState.OPEN:
            return item
        if isinstance(item, Invalid) and item.error.code is ErrorCode.LINE_TOO_LONG:
            # no client needs that much before AUTH: closing saves reading the rest of it
            self.state = AuthState.REFUSED
            return Invalid(LineTooLong(f"{item.error.message}; closing the connection"), item.rid)
        return self._fail(Unauthorized, 'authenticate first: {"op":"AUTH","token":"..."}', item.rid)

    def _auth(self, item: Auth, now: float) -> Item:
        if self._token is None:
            return Answered(OK, item.rid)
        throttle = self._throttle
        if throttle is not None:
            wait_s = throttle.wait_s(self._source, now)
            if wait_s > 0:  # refused before the token is even looked at
                self.state = AuthState.REFUSED
                why = (
                    "too many failed AUTH attempts from this address; "
                    f"try again in {math.ceil(wait_s)} s; closing the connection"
                )
                return Invalid(Unauthorized(why), item.rid)
        if hmac.compare_digest(item.token.encode(), self._token):
            self.state = AuthState.OPEN
            return Answered(OK, item.rid)
        if throttle is not None:
            throttle.failed(self._source, now)
        self.state = AuthState.LOCKED
        return self._fail(Unauthorized, "wrong token", item.rid)

    def _fail(self, kind: type[WonderQError], why: str, rid: str | int | None) -> Invalid:
        self._failures += 1
        if self._failures >= self.max_failures:
            self.state = AuthState.REFUSED
            why += f"; {self._failures} failed attempts, closing the connection"
        return Invalid(kind(why), rid)
