"""The pure queue engine (no asyncio, no sockets, no clock reads)."""

from broker.engine.engine import Engine
from broker.engine.ids import format_id, parse_id
from broker.engine.journal import Journal, NullJournal
from broker.engine.message import STATE_NAMES, Message, State
from broker.engine.queue import Queue
from broker.engine.settings import Effective, Settings
from broker.engine.values import (
    AckedRecord,
    AckResult,
    Headers,
    NewMessage,
    NewMessageFields,
    Picked,
)
from broker.engine.waiter import Delivery, Waiter
from broker.protocol.names import DEAD_SUFFIX

__all__ = [
    "DEAD_SUFFIX",
    "STATE_NAMES",
    "AckResult",
    "AckedRecord",
    "Delivery",
    "Effective",
    "Engine",
    "Headers",
    "Journal",
    "Message",
    "NewMessage",
    "NewMessageFields",
    "NullJournal",
    "Picked",
    "Queue",
    "Settings",
    "State",
    "Waiter",
    "format_id",
    "parse_id",
]
