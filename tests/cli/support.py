"""Running this interpreter as a subprocess, the way a shell runs the CLI."""

from __future__ import annotations

import asyncio
import sys


async def run_python(*args: str, timeout_s: float = 30.0) -> tuple[int, str, str]:
    """Run ``python ARGS`` to its end (killed past ``timeout_s``): exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
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
