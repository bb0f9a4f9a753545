"""The per-connection authentication gate (sans-IO).

Owns: whether one connection's requests may reach the backend, and the
answers to ``AUTH`` (which never reaches a backend). With no token configured
every connection is open and ``AUTH`` is answered ok, so clients may always
send it. With a token, a connection starts ``LOCKED``; the table below is the
whole behaviour. The token is compared in constant time (``hmac.compare_digest``).

    state    input                        answer         next state
    OPEN     AUTH, no token configured    ok             OPEN
    any      AUTH, right token            ok             OPEN
    any      AUTH, wrong token            unauthorized   LOCKED (REFUSED at the limit)
    OPEN     any other request            (backend)      OPEN
    LOCKED   any other line               unauthorized   LOCKED (REFUSED at the limit)
    REFUSED  anything                     (nothing)      REFUSED: close the connection

Must never: do IO, log a token, or echo one back.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from enum import Enum
from typing import Final

from broker.errors import Unauthorized
from broker.protocol.codec import Invalid
from broker.protocol.replies import OK, Reply
from broker.protocol.requests import Auth, Request

#: Failed lines (wrong token, or any request before AUTH) before the connection is closed.
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


class AuthGate:
    __slots__ = ("_failures", "_token", "max_failures", "state")

    def __init__(self, token: str | None, max_failures: int = MAX_FAILURES) -> None:
        self._token = None if token is None else token.encode()
        self.max_failures = max_failures
        self._failures = 0
        self.state = AuthState.OPEN if token is None else AuthState.LOCKED

    def screen(self, items: Sequence[Request | Invalid]) -> list[Item]:
        """Answer or pass each item in order; stop at refusal (the rest get nothing)."""
        if self.state is AuthState.OPEN and not any(type(i) is Auth for i in items):
            return list(items)  # the fast path: nothing for the gate to do
        out: list[Item] = []
        for item in items:
            if self.state is AuthState.REFUSED:
                break
            out.append(self._one(item))
        return out

    def _one(self, item: Request | Invalid) -> Item:
        if type(item) is Auth:
            if self._token is None or hmac.compare_digest(item.token.encode(), self._token):
                self.state = AuthState.OPEN
                return Answered(OK, item.rid)
            self.state = AuthState.LOCKED
            return self._fail("wrong token", item.rid)
        if self.state is AuthState.OPEN:
            return item
        return self._fail('authenticate first: {"op":"AUTH","token":"..."}', item.rid)

    def _fail(self, why: str, rid: str | int | None) -> Invalid:
        self._failures += 1
        if self._failures >= self.max_failures:
            self.state = AuthState.REFUSED
            why += f"; {self._failures} failed attempts, closing the connection"
        return Invalid(Unauthorized(why), rid)
