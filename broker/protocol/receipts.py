"""Receipts: the lease handles of messages received over the HTTP API.

Owns: the form of a receipt, ``<id>.<nonce>``: the message's id and a nonce
made for that one delivery (lower-case hex), so the receipt of an earlier
delivery of the same message never matches the current lease. Clients MUST
treat a receipt as opaque; the HTTP layer reads the id out of one only to check
that ``DELETE /v1/messages/{id}?receipt=R`` names R's own message.
Must never: do IO or hold state.
"""

from __future__ import annotations

from typing import Final

_HEX: Final = frozenset("0123456789abcdef")


def format_receipt(message_id: str, nonce: int) -> str:
    return f"{message_id}.{nonce:x}"


def parse_receipt(text: str) -> tuple[str, int] | None:
    """The message id and nonce of a receipt, or None if ``text`` cannot be one."""
    message_id, dot, nonce = text.partition(".")
    if not dot or not message_id or not nonce or len(nonce) > 16 or not _HEX.issuperset(nonce):
        return None
    return message_id, int(nonce, 16)


def message_id_of(text: str) -> str:
    """The id a receipt names (what comes before its dot)."""
    return text.partition(".")[0]
