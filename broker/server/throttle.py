"""Failed AUTH attempts per source address, across connections (sans-IO, no clock).

Owns: one token bucket of failed attempts for each source (``source_of``: an
IPv4 address, or the /64 network of an IPv6 one, since one host holds a whole
/64). A bucket holds ``burst`` attempts and refills at ``per_s`` per second; an
AUTH from a source whose bucket is empty is refused without comparing its
token, so reconnecting buys no guesses. At most ``max_sources`` buckets are
kept: a full bucket is the same as none and is forgotten, and past the bound
the source that failed longest ago is forgotten first (it has refilled the most).
Must never: read the clock (every call takes ``now``), do IO, or see a token.
"""

from __future__ import annotations

import ipaddress
from typing import Final

#: failed AUTHs a source may make at once ...
BURST: Final = 10
#: ... and then this many per second
PER_S: Final = 1.0
#: sources remembered at most (about 100 bytes each)
MAX_SOURCES: Final = 100_000


def source_of(host: str) -> str:
    """The throttled unit a peer address belongs to: an IPv4 address, an IPv6 /64."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket path, say: itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AuthThrottle:
    __slots__ = ("_buckets", "burst", "max_sources", "per_s")

    def __init__(
        self, burst: int = BURST, per_s: float = PER_S, max_sources: int = MAX_SOURCES
    ) -> None:
        self.burst = burst
        self.per_s = per_s
        self.max_sources = max_sources
        # source -> (attempts left, when that was counted); least recently failed first
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _left(self, source: str, now: float) -> float:
        bucket = self._buckets.get(source)
        if bucket is None:
            return float(self.burst)
        left, at = bucket
        return min(float(self.burst), left + max(0.0, now - at) * self.per_s)

    def wait_s(self, source: str, now: float) -> float:
        """Seconds until ``source`` may try a token again (0: it may now)."""
        left = self._left(source, now)
        return 0.0 if left >= 1.0 else (1.0 - left) / self.per_s

    def failed(self, source: str, now: float) -> None:
        """``source`` sent a wrong token: one attempt fewer. Forgets refilled buckets
        from the front (the least recently failed), and any past ``max_sources``."""
        left = max(0.0, self._left(source, now) - 1.0)
        buckets = self._buckets
        buckets.pop(source, None)
        buckets[source] = (left, now)  # now the most recent
        first = next(iter(buckets))
        first_left, at = buckets[first]
        if len(buckets) > self.max_sources or first_left + (now - at) * self.per_s >= self.burst:
            del buckets[first]  # past the bound, or refilled (the same as no bucket)
