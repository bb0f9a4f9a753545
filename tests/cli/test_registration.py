"""The subcommand table: each command loads only its own module; a broken module is an error."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.cli import SUBCOMMANDS, Subcommand, build_parser, main
from broker.server import Server
from tests.support import LineClient, run_python

#: what a client command must never load: the broker itself and the benchmark
HEAVY = ("broker.server", "broker.engine", "broker.bench", "broker.durability", "broker.backend")
SUBCOMMAND_MODULES = sorted({entry.module for entry in SUBCOMMANDS.values()})

#: runs main(ARGV) in a fresh interpreter; prints its exit code and the broker modules it loaded
PROBE = """
import json, sys
from broker.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m == "broker" or m.startswith("broker."))
print(json.dumps({"code": code, "loaded": loaded}))
"""


async def probe(*argv: str) -> tuple[int, list[str], str]:
    """Run ``main(argv)`` in a new process: its exit code, the broker modules loaded, its output."""
    code, out, err = await run_python("-c", PROBE, msgspec.json.encode(list(argv)).decode())
    assert code == 0, err
    *printed, last = out.splitlines()
    result = msgspec.json.decode(last)
    return result["code"], result["loaded"], "\n".join(printed)


def heavy(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m.startswith(tuple(f"{h}." for h in HEAVY)) or m in HEAVY]


async def test_put_and_get_load_the_client_only(server: Server) -> None:
    port = str(server.port)
    code, loaded, out = await probe("put", "jobs", '{"n": 1}', "--port", port)
    assert code == 0 and out.strip()
    assert heavy(loaded) == []
    assert not {"broker.cli.serve", "broker.cli.bench", "broker.cli.demo"} & set(loaded)
    async with await LineClient.connect(server.port) as c:
        stats = (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]
        assert stats["ready"] == 1  # it did put the message

    code, loaded, out = await probe("get", "jobs", "--ack", "--port", port)
    assert code == 0 and msgspec.json.decode(out)["body"] == {"n": 1}
    assert heavy(loaded) == []


async def test_help_lists_every_subcommand_and_imports_none() -> None:
    code, loaded, out = await probe("--help")
    assert code == 0
    assert not set(SUBCOMMAND_MODULES) & set(loaded) and heavy(loaded) == []
    listed = " ".join(out.split())
    for name, entry in SUBCOMMANDS.items():
        assert f"{name} {' '.join(entry.help.split())}" in listed, name


async def test_serve_help_loads_serve_but_not_the_benchmark() -> None:
    code, loaded, out = await probe("serve", "--help")
    assert code == 0 and "--max-batch" in out
    assert "broker.cli.serve" in loaded
    assert not {"broker.cli.bench", "broker.bench", "broker.cli.demo"} & set(loaded)


def subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_module_adds_its_subcommands_with_the_table_s_help(name: str) -> None:
    entry = SUBCOMMANDS[name]
    sub = subparsers(build_parser(name))
    assert name in sub.choices
    assert callable(sub.choices[name].get_default("run"))
    # a module that still gives its own one-line help says what the table says
    given = {action.dest: action.help for action in sub._choices_actions}
    assert given.get(name) in (None, entry.help)
    # and every subcommand the module adds is in the table, under that module
    assert all(SUBCOMMANDS[added].module == entry.module for added in sub.choices)


def test_a_subcommand_whose_module_fails_to_import_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(SUBCOMMANDS, "broken", Subcommand("broker.cli.no_such_module", "broken"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        main(["broken"])
    # the other commands are still listed, and the broken one too: nothing is hidden
    assert "broken" in subparsers(build_parser()).choices


def test_a_module_that_adds_no_parser_for_its_command_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(SUBCOMMANDS, "missing", Subcommand("broker.cli.top", "not in top"))
    with pytest.raises(RuntimeError, match=r"broker\.cli\.top does not add the missing"):
        build_parser("missing")


def test_no_command_prints_the_list_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_the_readme_s_commands_table_lists_every_command() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name in SUBCOMMANDS:
        assert f"| `wonderq {name}" in table or f", `wonderq {name}" in table, name


@pytest.mark.parametrize("name", [n for n in SUBCOMMANDS if n not in ("serve", "demo", "bench")])
async def test_every_client_command_loads_the_client_only(name: str) -> None:
    code, loaded, _ = await probe(name, "--help")
    assert code == 0 and heavy(loaded) == [], (name, heavy(loaded))
