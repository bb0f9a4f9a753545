"""A failing handler is logged with its traceback, and the log says what became of the message:
retried in N s, or, on its last attempt, moved to <queue>.dead (never "retrying" then)."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from typing import Any

import wonderq

T = 10.0


def failures(log_watch: Any) -> list[logging.LogRecord]:
    return [r for r in log_watch.records if r.getMessage().startswith("handler failed")]


def assert_logged_as_it_happened(records: list[logging.LogRecord], msg_id: str) -> None:
    first, last = records
    assert first.levelname == "WARNING"
    error = "ValueError('corrupt image corrupt.png')"
    assert first.getMessage() == (
        f"handler failed on message {msg_id} of 'jobs' (attempt 1): {error}; retrying in 0.01 s"
    )
    assert last.levelname == "ERROR"
    assert last.getMessage() == (
        f"handler failed on message {msg_id} of 'jobs' (attempt 2): {error}; "
        "that was its last attempt: moved to jobs.dead"
    )
    for record in records:
        assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
        text = "".join(traceback.format_exception(*record.exc_info))
        assert "in resize_image" in text  # the handler's own frame is in the traceback
        assert "corrupt image" in text


async def dead_letter(port: int) -> str:
    """Take the message that reaches ``jobs.dead`` (waiting for it, bounded); return its id."""
    async with await wonderq.connect("127.0.0.1", port) as client, asyncio.timeout(T):
        for _ in range(10):  # bounded: each GET waits on the broker
            if got := await client.get("jobs.dead", wait=T):
                await got[0].ack()
                return got[0].id
    raise AssertionError("nothing reached jobs.dead")


async def test_a_failing_handler_is_logged_with_its_traceback_and_the_truth(
    client: wonderq.AsyncClient, broker: Any, log_watch: Any
) -> None:
    msg_id = await client.put("jobs", "corrupt.png", max_attempts=2)

    async def resize_image(message: wonderq.Message) -> None:
        raise ValueError(f"corrupt image {message.body}")

    worker = asyncio.create_task(
        client.run_worker("jobs", resize_image, wait=T, backoff=lambda attempts: 0.01)
    )
    try:
        assert await dead_letter(broker.port) == msg_id
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert_logged_as_it_happened(failures(log_watch), msg_id)
    assert not log_watch.messages("moved to jobs.dead; retrying")


async def test_the_blocking_worker_logs_the_same(broker: Any, log_watch: Any) -> None:
    stop = threading.Event()

    def resize_image(message: wonderq.SyncMessage) -> None:
        raise ValueError(f"corrupt image {message.body}")

    def run() -> str:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            msg_id = c.put("jobs", "corrupt.png", max_attempts=2)
            c.run_worker("jobs", resize_image, wait=T, backoff=lambda attempts: 0.01, stop=stop)
            return msg_id

    worker = asyncio.create_task(asyncio.to_thread(run))
    try:
        dead_id = await dead_letter(broker.port)
    finally:
        stop.set()
        async with asyncio.timeout(T):
            msg_id = await worker
    assert dead_id == msg_id
    assert_logged_as_it_happened(failures(log_watch), msg_id)
