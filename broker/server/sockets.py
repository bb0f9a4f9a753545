"""Socket options every accepted TCP connection gets.

Owns: ``TCP_NODELAY`` (replies go out at once) and TCP keepalive, so that a
peer that vanished without a FIN or RST (a crashed host, a dropped NAT entry, a
pulled cable) is noticed and its connection closed, releasing its leases and
waiting GETs: after ``KEEPALIVE_IDLE_S`` of silence the kernel probes every
``KEEPALIVE_INTERVAL_S`` and gives up after ``KEEPALIVE_PROBES`` unanswered
probes, so within ``KEEPALIVE_LIMIT_S`` (60 s) of the peer's last sign of life.
(Keepalive probes an idle connection; one with replies still unacknowledged is
ended by the kernel's retransmission timeout instead.)
Must never: block, or fail a connection over an option the platform lacks.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Final

KEEPALIVE_IDLE_S: Final = 30
KEEPALIVE_INTERVAL_S: Final = 10
KEEPALIVE_PROBES: Final = 3
#: a vanished peer's connection is closed this long after it last sent anything
KEEPALIVE_LIMIT_S: Final = KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_PROBES

_TCP_KEEPALIVE: Final = (
    ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
    ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
    ("TCP_KEEPCNT", KEEPALIVE_PROBES),
)


def tune(sock: socket.socket | None) -> None:
    """Set ``TCP_NODELAY`` and keepalive on an accepted TCP socket (others are left alone)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _TCP_KEEPALIVE:
        option = getattr(socket, name, None)
        if option is not None:  # Linux has all three; macOS lacks TCP_KEEPIDLE
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
