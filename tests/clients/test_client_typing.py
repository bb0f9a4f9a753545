"""The clients' types as a user's ``mypy --strict`` sees them.

``consume()`` is documented to be used with ``contextlib.aclosing`` (asyncio)
and ``contextlib.closing`` (blocking), so it must be typed as a generator:
typed as a mere iterator, a user's type checker rejects the documented usage.
The snippet is checked by mypy, in its own folder with its own settings, the
way a user's project would check it; a control that misuses ``aclosing`` the
way the old annotation did shows that mypy really reports such a mistake.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

from tests.conftest import one_backend

CLIENT_ROOT = Path(__file__).resolve().parents[2] / "clients" / "python"

USER_CODE = """
import contextlib

import wonderq


async def handle_async(client: wonderq.AsyncClient) -> None:
    async with contextlib.aclosing(client.consume("jobs", concurrency=2)) as messages:
        async for message in messages:
            await message.ack()
            break


def handle_blocking(client: wonderq.Client) -> None:
    with contextlib.closing(client.consume("jobs")) as messages:
        for message in messages:
            message.ack()
            break
"""

CONTROL = """
import contextlib
from collections.abc import AsyncIterator


def messages() -> AsyncIterator[int]:
    raise NotImplementedError


async def misuse() -> None:
    async with contextlib.aclosing(messages()):
        pass
"""


def mypy_strict(code: str, folder: Path) -> tuple[int, str]:
    (folder / "user_code.py").write_text(code)
    (folder / "mypy.ini").write_text(f"[mypy]\nstrict = True\nmypy_path = {CLIENT_ROOT}\n")
    out, err, status = api.run(
        [
            "--config-file", str(folder / "mypy.ini"),
            "--cache-dir", str(folder / "cache"),
            str(folder / "user_code.py"),
        ]
    )  # fmt: skip
    return status, out + err


@one_backend  # mypy on snippets: starts no broker
def test_consume_type_checks_with_aclosing_and_closing(tmp_path: Path) -> None:
    status, report = mypy_strict(USER_CODE, tmp_path)
    assert status == 0, report
    control, report = mypy_strict(CONTROL, tmp_path)
    assert control == 1 and '"aclosing" cannot be "AsyncIterator[int]"' in report, report
