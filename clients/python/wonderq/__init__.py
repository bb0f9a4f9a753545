"""WonderQ's Python client: ``AsyncClient`` (asyncio) and ``Client`` (blocking), typed and small.

Owns: the package's public names. Must never: hold state or do IO at import.

    async with wonderq.connect("127.0.0.1", 7878) as client:
        await client.put("jobs", {"task": "resize"})
        for msg in await client.get("jobs", wait=5):
            await msg.ack()

Dependencies: msgspec and the standard library only.
"""

from .client import AsyncClient, Connecting, connect
from .errors import (
    BadJson,
    BadRequest,
    ConnectFailed,
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
from .message import BaseMessage, Message, SyncMessage
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
from .sync import Client, connect_sync
from .sync_worker import SyncHandler
from .worker import Consumer, Handler, exponential_backoff

__all__ = [
    "AckResult",
    "AsyncClient",
    "BadJson",
    "BadRequest",
    "BaseMessage",
    "Client",
    "ConnectFailed",
    "Connecting",
    "ConnectionLost",
    "Consumer",
    "Envelope",
    "ErrorCode",
    "Handler",
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
    "SyncHandler",
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
