"""WonderQ's Python client: ``AsyncClient`` (asyncio) and ``Client`` (blocking), typed and small.

Owns: the package's public names. Must never: hold state or do IO at import.

    async with wonderq.connect("127.0.0.1", 7878) as client:
        await client.put("jobs", {"task": "resize"})
        for msg in await client.get("jobs", wait=5):
            await msg.ack()

Dependencies: msgspec and the standard library only.
"""

from .client import AsyncClient, Connecting, connect
from .commands import KEEP, Keep
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
    PutManyResult,
    PutResult,
    QueueSettings,
    QueueStats,
    RedriveResult,
    RemoveResult,
    ServerStats,
    Stats,
)
from .sync import Client, connect_sync
from .sync_worker import SyncHandler
from .worker import Consumer, Handler, exponential_backoff

__all__ = [
    "KEEP",
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
    "Keep",
    "LineTooLong",
    "MemoryLimit",
    "Message",
    "MessageInfo",
    "MessageState",
    "NotFound",
    "NotLeased",
    "PeekResult",
    "ProtocolViolation",
    "PutManyResult",
    "PutResult",
    "QueueFull",
    "QueueSettings",
    "QueueStats",
    "RedriveResult",
    "RemoveResult",
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
