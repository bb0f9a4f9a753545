"""WonderQ's Python client: ``AsyncClient`` (asyncio) and ``Client`` (blocking), typed and small.

Owns: the package's public names. Must never: hold state or do IO at import.

    async with await wonderq.connect("127.0.0.1", 7878) as client:
        await client.put("jobs", {"task": "resize"})
        for msg in await client.get("jobs", wait=5):
            await msg.ack()

Dependencies: msgspec and the standard library only.
"""

from .client import AsyncClient, connect
from .errors import (
    BadJson,
    BadRequest,
    ConnectionLost,
    ErrorCode,
    LineTooLong,
    MemoryLimit,
    NotFound,
    NotLeased,
    ProtocolViolation,
    QueueFull,
    RequestTimeout,
    ShuttingDown,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownOp,
    WonderQError,
    error_class,
)
from .message import BaseMessage, Message
from .results import (
    AckResult,
    Envelope,
    MessageInfo,
    MessageState,
    PeekResult,
    QueueStats,
    ServerStats,
    Stats,
)
from .sync import Client, SyncMessage, connect_sync
from .worker import Consumer, exponential_backoff

__all__ = [
    "AckResult",
    "AsyncClient",
    "BadJson",
    "BadRequest",
    "BaseMessage",
    "Client",
    "ConnectionLost",
    "Consumer",
    "Envelope",
    "ErrorCode",
    "LineTooLong",
    "MemoryLimit",
    "Message",
    "MessageInfo",
    "MessageState",
    "NotFound",
    "NotLeased",
    "PeekResult",
    "ProtocolViolation",
    "QueueFull",
    "QueueStats",
    "RequestTimeout",
    "ServerStats",
    "ShuttingDown",
    "Stats",
    "SyncMessage",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownOp",
    "WonderQError",
    "connect",
    "connect_sync",
    "error_class",
    "exponential_backoff",
]
