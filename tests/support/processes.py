"""Running a command as a subprocess to its end, the way a shell runs it, bounded in time.

Owns: the environment a test's subprocess gets (this one's, without the broker
address, token or CA the developer may have exported for the client commands)
and running a command to its exit (``run``), or while a block runs (``started``).
Never: leaves a process running (past ``timeout_s``, or at the end of the block, it
is killed and waited for), or waits without a bound.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

#: what the client commands read from the environment (and serve, the token)
CLIENT_ENV = ("WONDERQ_HOST", "WONDERQ_PORT", "WONDERQ_TOKEN", "WONDERQ_TLS_CA")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``CLIENT_ENV``, then ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    return {**env, **(extra or {})}


async def run(
    *argv: str,
    timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> tuple[int, str, str]:
    """Run ``argv`` to its end (killed past ``timeout_s``): exit code, stdout, stderr.

    ``env`` is added to :func:`clean_env`'s environment; ``input`` is its stdin (else none).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(env),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate(input)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None  # communicate() returned: it exited
    return proc.returncode, out.decode(), err.decode()


@asynccontextmanager
async def started(
    *argv: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stderr: int | IO[bytes] = asyncio.subprocess.PIPE,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``argv`` running (no stdin, stdout piped, ``env`` added to :func:`clean_env`'s);
    killed and waited for on the way out if it is still running."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=clean_env(env),
        cwd=cwd,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run_python(
    *args: str,
    timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> tuple[int, str, str]:
    """Run ``python ARGS`` with this interpreter, as :func:`run` does."""
    return await run(sys.executable, *args, timeout_s=timeout_s, env=env, cwd=cwd, input=input)
