"""protocol.md cannot drift: its transcripts run against a real server (README.md's
snippets: tests/test_readme.py).

Each ``C:``/``S:`` transcript of protocol.md is replayed on a fresh server and
connection: ``C:`` lines are sent as written (``<idN>`` replaced by the id the
server gave earlier), each ``S:`` line must match the next reply exactly, where
``"<idN>"`` captures an id on first sight and ``"<any>"`` matches any value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.protocol.requests import OPS
from tests.conftest import running_server
from tests.support import LineClient

#: the transcripts are replayed on every backend (memory, then Redis)
pytestmark = pytest.mark.usefixtures("backend_kind")

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"<((?:id|receipt)\d+)>")


def transcripts(text: str) -> list[tuple[int, list[str]]]:
    """Code blocks whose lines start with 'C: ' or 'S: ', with their line numbers."""
    out: list[tuple[int, list[str]]] = []
    block: list[str] | None = None
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if block is None:
                block, start = [], n
            else:
                if block and all(b[:3] in ("C: ", "S: ") for b in block):
                    out.append((start, block))
                block = None
        elif block is not None:
            block.append(line)
    return out


def substitute(text: str, env: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def matches(expected: Any, actual: Any, env: dict[str, str]) -> bool:
    if expected == "<any>":
        return True
    if isinstance(expected, str):
        whole = PLACEHOLDER.fullmatch(expected)
        if whole and whole.group(1) not in env:
            if not isinstance(actual, str):
                return False
            env[whole.group(1)] = actual
            return True
        return isinstance(actual, str) and substitute(expected, env) == actual
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and list(expected) == list(actual)
            and all(matches(expected[k], actual[k], env) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a, env) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual and type(expected) is type(actual))


PROTOCOL = transcripts((ROOT / "protocol.md").read_text())


def test_protocol_md_documents_every_op_of_the_protocol() -> None:
    """Every op the server accepts (the protocol's own table) has a section and a replayed example."""
    text = (ROOT / "protocol.md").read_text()
    operations = text.split("\n## 4. Operations\n", 1)[1].split("\n## 5.", 1)[0]
    headings = " ".join(re.findall(r"^### (.*)$", operations, re.M))
    sent = " ".join(line for _, block in PROTOCOL for line in block if line.startswith("C: "))
    assert OPS, "the protocol's table of ops is empty"
    for op in sorted(OPS):
        assert re.search(rf"\b{op}\b", headings), f"protocol.md has no section for {op}"
        assert f'"op":"{op}"' in sent, f"protocol.md has no replayed example of {op}"


@pytest.mark.parametrize("start,block", PROTOCOL, ids=[f"line{s}" for s, _ in PROTOCOL])
async def test_protocol_md_transcript(start: int, block: list[str]) -> None:
    env: dict[str, str] = {}
    async with running_server() as server, await LineClient.connect(server.port) as c:
        for line in block:
            kind, text = line[:3], line[3:]
            if kind == "C: ":
                await c.send_raw(substitute(text, env).encode() + b"\n")
                continue
            expected = msgspec.json.decode(text)
            actual = await c.reply()
            assert matches(expected, actual, env), (
                f"protocol.md line {start}: expected {text}\n got {msgspec.json.encode(actual).decode()}"
            )
