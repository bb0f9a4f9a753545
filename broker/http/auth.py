"""Who may use the HTTP API: the bearer token, and no action from another site.

Owns: checking ``Authorization: Bearer <token>`` against the server's token
(the same ``--token`` as the TCP port; compared in constant time with
``hmac.compare_digest``; every path but ``/healthz`` needs it; a source that
guessed wrong too often is refused before its token is compared, by the very
throttle of failed AUTHs the TCP port keeps, app.py), and refusing a
request that changes something when a browser says it comes from another site
(``Sec-Fetch-Site`` other than ``same-origin`` or ``none``, or an ``Origin``
that is not this host). The second rule is what keeps a web page open in a
browser on the broker's machine from purging queues on a broker that has no
token: a cross-site form or ``fetch`` can reach ``127.0.0.1`` but cannot set
``Authorization``, and browsers always send those headers; ``curl`` and
client libraries send neither and are unaffected. With ``--console-read-only``
the same headers mark a request as a browser's, and every action a browser
sends is refused, the console's own included: the console is read-only on the
server, not only on the screen, while scripts and clients keep every action.
A browser's request must also name this broker in its ``Host``: an IP address,
``localhost``, ``--host`` or a name in ``--http-hosts``. A page on another site
whose name was rebound to 127.0.0.1 (DNS rebinding) is same-origin to itself,
so the rules above pass it; its ``Host`` still carries its own name, refused here,
for reads as well as actions.
Must never: log a token, echo one back, or compare it in variable time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from broker.errors import Unauthorized

#: methods that never change the broker; every other one is an action
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE: Final = frozenset({"same-origin", "none"})


class BearerAuth:
    """The token check of one server (no token: every request passes)."""

    __slots__ = ("_token",)

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else token.encode()

    @property
    def required(self) -> bool:
        return self._token is not None

    def check(self, authorization: str | None, wrong: Callable[[], None] | None = None) -> None:
        """Raise ``Unauthorized`` unless ``authorization`` carries the token; call
        ``wrong`` first when it carried a token and that token was wrong (a guess)."""
        if self._token is None:
            return
        if authorization is None:
            raise Unauthorized("this server needs a token: send 'Authorization: Bearer <token>'")
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), self._token):
            if wrong is not None:
                wrong()
            raise Unauthorized("wrong token")


def cross_site_problem(method: str, headers: Mapping[str, str], host: str | None) -> str | None:
    """Why an action must be refused as coming from another web site, or None."""
    if method in SAFE_METHODS:
        return None
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        if site.lower() in _SAME_SITE:
            return None
        return f"a request from another site (Sec-Fetch-Site: {site}) may not change the broker"
    origin = headers.get("Origin")
    if origin is None:
        return None
    if origin == "null" or urlsplit(origin).netloc != host:
        return f"a request from another origin ({origin}) may not change the broker"
    return None


def read_only_problem(method: str, headers: Mapping[str, str]) -> str | None:
    """Why a read-only console's server refuses this request (an action from a browser)."""
    if method in SAFE_METHODS:
        return None
    if "Sec-Fetch-Site" not in headers and "Origin" not in headers:
        return None  # not a browser: a script or a client
    return (
        "the console is read-only (serve --console-read-only): a browser may not change "
        "the broker; scripts and clients may"
    )


class HostGuard:
    """The names a browser may reach this broker by (DNS rebinding: ``host_problem``)."""

    __slots__ = ("_names",)

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(n.strip().lower().rstrip(".") for n in names if n.strip())

    def problem(self, headers: Mapping[str, str], host: str | None) -> str | None:
        """Why a browser's request for ``host`` is refused, or None (not a browser's, or a
        name this broker answers to)."""
        if "Sec-Fetch-Site" not in headers and "Origin" not in headers:
            return None  # not a browser: a script or a client
        name = _host_name(host or "")
        if name in self._names or name == "localhost" or name.endswith(".localhost"):
            return None
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return (
                f"a browser reached this broker as {name!r}, a name it does not serve (a "
                f"guard against DNS rebinding): add it with serve --http-hosts {name}"
            )
        return None


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port or an IPv6 address's brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")
