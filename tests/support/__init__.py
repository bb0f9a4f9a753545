"""What tests share: a raw line client, a broker process, subprocesses, tools, TLS.

``from tests.support import LineClient`` keeps working; each concept lives in its
own module (lines, broker, processes, tools, tls).
"""

from __future__ import annotations

from tests.support.broker import BrokerProcess
from tests.support.lines import REPLY_TIMEOUT_S, LineClient, closed_by_server, offer_until_unread
from tests.support.processes import clean_env, run, run_python, started
from tests.support.tls import CertFiles, make_certificate
from tests.support.tools import require, require_tool

__all__ = [
    "REPLY_TIMEOUT_S",
    "BrokerProcess",
    "CertFiles",
    "LineClient",
    "clean_env",
    "closed_by_server",
    "make_certificate",
    "offer_until_unread",
    "require",
    "require_tool",
    "run",
    "run_python",
    "started",
]
