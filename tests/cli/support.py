"""Running this interpreter as a subprocess, the way a shell runs the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

#: the variables the client commands read; a test's subprocess gets only those it sets
WONDERQ_ENV = ("WONDERQ_HOST", "WONDERQ_PORT", "WONDERQ_TOKEN", "WONDERQ_TLS_CA")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the ``WONDERQ_*`` variables, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in WONDERQ_ENV}
    return {**env, **(extra or {})}


async def run_python(
    *args: str,
    timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> tuple[int, str, str]:
    """Run ``python ARGS`` to its end (killed past ``timeout_s``): exit code, stdout, stderr.

    ``env`` is added to :func:`clean_env`'s environment; ``input`` is its stdin (else none).
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
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


async def wonderq(
    *args: str,
    exit_code: int = 0,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    notes: bool = False,
) -> tuple[str, str]:
    """Run ``python -m broker ARGS``; check it exits with ``exit_code``; its stdout and stderr.

    A success says nothing on stderr, unless ``notes`` (``get`` says what it released)."""
    code, out, err = await run_python("-m", "broker", *args, env=env, input=input)
    assert code == exit_code, (args, code, out, err)
    if exit_code == 0 and not notes:
        assert err == "", err
    return out, err
