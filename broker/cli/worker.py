"""``wonderq worker QUEUE module:function``: run a Python handler on a queue, like ``celery worker``.

Owns: importing the handler (``module:function``, the current directory first on
the import path, as ``celery -A`` and ``uvicorn`` do), the logs (stderr, one line
per message done and, from the client's ``run_worker``, one per failure with its
traceback), and running it: an ``async def`` handler on the asyncio client's
``run_worker``, a plain function on the blocking client's (in threads). The
handler returns to ack its message and raises to have it retried with backoff;
after its ``max_attempts`` the broker moves it to ``<queue>.dead``. The worker
reconnects when the broker goes away (``--reconnect-timeout`` per outage) and
stops on SIGINT or SIGTERM: no more messages are taken, running handlers get
``--grace`` seconds to finish, the rest are released, and it exits 0.
Must never: import the server, or swallow a handler's failure without logging it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import wonderq
from broker.cli.target import EXIT_USAGE, Target, client_command, run_command, tell

log = logging.getLogger("wonderq.worker")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_parser(sub: Any) -> None:
    p = client_command(
        sub,
        "worker",
        run,
        (
            "HANDLER is module:function, imported with the current directory first on "
            "the path; it is called with each message (.body, .headers, .attempts, .id): "
            "return to ack it, raise to retry it later (1, 2, 4... s), until its "
            "max_attempts sends it to <queue>.dead. An `async def` handler runs on one "
            "event loop, a plain function in --concurrency threads. SIGINT (Ctrl-C) or "
            "SIGTERM stops it: running handlers get --grace seconds to finish, what it "
            "holds beyond that is released, and it exits 0. It reconnects when the broker "
            "goes away (the messages it held come back to the queue)."
        ),
    )
    p.add_argument("queue")
    p.add_argument("handler", metavar="HANDLER", help="module:function, e.g. tasks:resize")
    p.add_argument("--concurrency", type=int, default=8, help="messages at once (default 8)")
    p.add_argument(
        "--lease", type=float, default=30.0, help="lease seconds, renewed while a handler runs"
    )
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running handlers get to finish on a stop (default 30)",
    )
    p.add_argument(
        "--reconnect-timeout",
        type=float,
        default=300.0,
        help="seconds to keep dialing a broker that went away before giving up (default 300)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="INFO logs every message done; WARNING only failures (default INFO)",
    )


class HandlerNotFound(Exception):
    """HANDLER does not name a function that can be imported (the message says why)."""


def load_handler(spec: str) -> Callable[..., Any]:
    """The function ``module:function`` names (``function`` may be dotted: ``obj.method``)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerNotFound(f"HANDLER is module:function (e.g. tasks:resize), not {spec!r}")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists but imports something missing: its traceback says what
        raise HandlerNotFound(f"no module named {module_name!r} (looked in {here} first)") from None
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise HandlerNotFound(f"{module_name} has no {attribute!r}") from None
    if not callable(target):
        raise HandlerNotFound(f"{spec} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    try:
        handler = load_handler(args.handler)
    except HandlerNotFound as exc:
        tell(args, str(exc))
        return EXIT_USAGE
    except Exception:  # the handler's module failed while importing: show where
        tell(args, f"cannot import {args.handler}:\n{traceback.format_exc().rstrip()}")
        return EXIT_USAGE
    if args.concurrency < 1:
        tell(args, "--concurrency must be at least 1")
        return EXIT_USAGE

    def action(target: Target) -> None:
        kind = "async" if inspect.iscoroutinefunction(handler) else "threaded"
        log.info(
            "working on %s at %s: %s (%s, concurrency %d, lease %g s); SIGINT or SIGTERM stops",
            args.queue,
            target.where,
            args.handler,
            kind,
            args.concurrency,
            args.lease,
        )
        if inspect.iscoroutinefunction(handler):
            asyncio.run(_work_async(args, target, handler))
        else:
            _work_threaded(args, target, handler)
        log.info("stopped")

    return run_command(args, action)


def _done(message: wonderq.BaseMessage, started: float) -> None:
    log.info(
        "%s done in %.3f s (attempt %d)", message.id, time.monotonic() - started, message.attempts
    )


async def _work_async(
    args: argparse.Namespace, target: Target, handler: Callable[..., Awaitable[object]]
) -> None:
    async def handle(message: wonderq.Message) -> None:
        started = time.monotonic()
        await handler(message)
        _done(message, started)

    client = target.async_client(reconnect=True, reconnect_timeout=args.reconnect_timeout)
    async with client:
        await client.run_worker(
            args.queue,
            handle,
            concurrency=args.concurrency,
            lease=args.lease,
            grace=args.grace,
        )


def _work_threaded(
    args: argparse.Namespace, target: Target, handler: Callable[..., object]
) -> None:
    def handle(message: wonderq.SyncMessage) -> None:
        started = time.monotonic()
        handler(message)
        _done(message, started)

    client = target.client(reconnect=True, reconnect_timeout=args.reconnect_timeout)
    client.run_worker(
        args.queue, handle, concurrency=args.concurrency, lease=args.lease, grace=args.grace
    )
