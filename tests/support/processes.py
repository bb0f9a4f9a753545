"""Running a command as a subprocess to its end, the way a shell runs it, bounded in time.

Owns: the environment a test's subprocess gets (this one's, without a token the
developer may have exported) and running a command to its exit. Never: leaves a
process running (past ``timeout_s`` it is killed and waited for), or waits
without a bound.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``WONDERQ_TOKEN``, then ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if k != "WONDERQ_TOKEN"}
    return {**env, **(extra or {})}


async def run(
    *argv: str,
    timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, str, str]:
    """Run ``argv`` to its end (killed past ``timeout_s``): exit code, stdout, stderr.

    ``env`` is added to :func:`clean_env`'s environment.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(env),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None  # communicate() returned: it exited
    return proc.returncode, out.decode(), err.decode()


async def run_python(
    *args: str,
    timeout_s: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, str, str]:
    """Run ``python ARGS`` with this interpreter, as :func:`run` does."""
    return await run(sys.executable, *args, timeout_s=timeout_s, env=env, cwd=cwd)
