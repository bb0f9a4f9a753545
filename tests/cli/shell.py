"""The ``wonderq`` command run the way a shell runs it: a subprocess, its exit code checked."""

from __future__ import annotations

from tests.support import run_python


async def wonderq(
    *args: str,
    exit_code: int = 0,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    notes: bool = False,
) -> tuple[str, str]:
    """Run ``python -m broker ARGS``; check it exits with ``exit_code``; its stdout and stderr.

    ``env`` is added to a clean environment (no ``WONDERQ_*`` variable of the developer's).
    A success says nothing on stderr, unless ``notes`` (``get`` says what it released).
    """
    code, out, err = await run_python("-m", "broker", *args, env=env, input=input)
    assert code == exit_code, (args, code, out, err)
    if exit_code == 0 and not notes:
        assert err == "", err
    return out, err
