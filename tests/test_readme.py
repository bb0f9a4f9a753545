"""README.md as a newcomer runs it: its five-minute path and its clients' examples.

Every step runs the way the README says, in a directory like a fresh clone (``.venv``
and ``clients`` linked from this checkout, so nothing is written into it): the broker
is the very command ``make serve`` runs, on free ports; ``.venv/bin/wonderq`` and the
``$ `` lines of a ``console`` block run in bash and print what the block shows
(``<idN>`` captures a value on first sight, as in protocol.md's transcripts); the
code blocks the text says to save are saved under their names and run as processes
(``.venv/bin/python worker.py``, ``node worker.mjs``), a worker is stopped with
SIGINT (Ctrl-C) and must exit 0 without a traceback; ``wonderq top`` runs in a
real terminal (tmux); netcat, npm and curl are the real ones. Only the ports change:
7878 and 7879 become the test broker's, and ``WONDERQ_PORT`` points the bare
``wonderq`` commands at it.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from broker.cli import SUBCOMMANDS, build_parser
from tests.cli.test_registration import subparsers
from tests.cli.test_top import Terminal
from tests.cli.test_top import run as run_quietly
from tests.clients.test_client_readme import snippet
from tests.support import LineClient, require_tool, run, started
from tests.test_protocol_doc import PLACEHOLDER, ROOT, matches, substitute

README = ROOT / "README.md"
T = 20.0
#: what the README's commands and snippets name, and what the tests put instead
README_PORT, README_HTTP_PORT = "7878", "7879"
#: npm without the network calls it makes besides installing (audit, funding, updates)
QUIET_NPM = {"npm_config_audit": "false", "npm_config_fund": "false"}


def section(title: str) -> str:
    text = README.read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


FIVE_MINUTES = section("Five minutes from a fresh clone")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    saved_as: str | None  # the file name the text before it says to save it as


def blocks(text: str) -> list[Block]:
    out = []
    for before, lang, code in re.findall(r"(?s)(.*?)^```(\w*)\n(.*?)^```\n", text, re.M):
        said = re.findall(r"\bthis as `([\w.-]+)`", before.rstrip().split("\n\n")[-1])
        out.append(Block(lang, code, said[-1] if said else None))
    return out


def shell_lines(text: str) -> list[tuple[str, str]]:
    """The commands of the ``sh`` blocks: (command, its comment)."""
    lines = [ln for b in blocks(text) if b.lang == "sh" for ln in b.code.splitlines()]
    return [(cmd.strip(), note.strip()) for cmd, _, note in (ln.partition("  #") for ln in lines)]


def command(start: str) -> tuple[str, str]:
    (found,) = [(cmd, note) for cmd, note in shell_lines(FIVE_MINUTES) if cmd.startswith(start)]
    return found


@dataclass
class Broker:
    proc: asyncio.subprocess.Process
    port: int
    http_port: int
    hint: list[str]  # what it printed after the listening lines

    def on_ports(self, text: str) -> str:
        return text.replace(README_PORT, str(self.port)).replace(
            README_HTTP_PORT, str(self.http_port)
        )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A directory like the README's clone: ``.venv`` (this venv) and ``clients`` in it."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the README's commands use .venv: run the tests with make test")
    root = tmp_path / "clone"
    root.mkdir()
    (root / ".venv").symlink_to(sys.prefix)
    (root / "clients").symlink_to(ROOT / "clients")
    return root


async def make_serve_command() -> list[str]:
    """The command ``make serve`` runs (its install step taken as done), on free ports."""
    code, out, err = await run(
        require_tool("make"), "-n", "-s", "--no-print-directory", "-C", str(ROOT),
        "-o", ".venv/.installed-stamp", "serve", "ARGS=--port 0 --http-port 0",
    )  # fmt: skip
    assert code == 0, err
    (line,) = out.splitlines()
    return shlex.split(line)


@asynccontextmanager
async def make_serve(clone: Path) -> AsyncIterator[Broker]:
    """The broker as ``make serve`` starts it, run from ``clone``; on the way out it gets a
    Ctrl-C (SIGINT), and must exit 0 without a traceback."""
    argv = await make_serve_command()
    assert argv[:2] == [".venv/bin/wonderq", "serve"], argv
    log = clone.parent / "broker.log"
    with log.open("wb") as err:
        async with started(*argv, cwd=clone, stderr=err) as proc:
            assert proc.stdout is not None
            async with asyncio.timeout(T):
                printed = [(await proc.stdout.readline()).decode().rstrip("\n") for _ in range(4)]
            listening, http, *hint = printed
            assert listening.startswith("listening on 127.0.0.1:"), (printed, log.read_text())
            assert http.startswith("http on 127.0.0.1:"), printed
            port, http_port = (int(line.rsplit(":", 1)[1]) for line in (listening, http))
            yield Broker(proc, port, http_port, hint)
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(T):
                assert await proc.wait() == 0, log.read_text()
            assert "Traceback" not in log.read_text()


async def bash(line: str, cwd: Path, broker: Broker, env: dict[str, str] | None = None) -> str:
    """One command line as pasted (only the ports changed), to its end: its stdout."""
    extra = {"WONDERQ_PORT": str(broker.port), **(env or {})}
    code, out, err = await run("bash", "-c", broker.on_ports(line), cwd=cwd, env=extra, timeout_s=T)
    assert code == 0, (line, out, err)
    return out


def same(expected: list[str], got: list[str], env: dict[str, str]) -> bool:
    """Lines as a block shows them: JSON matched as protocol.md's transcripts are, text
    exactly, but for ``<idN>``, which captures a word on first sight."""
    if len(expected) != len(got):
        return False
    for want, line in zip(expected, got, strict=True):
        if want.startswith("{"):
            if not matches(msgspec.json.decode(want), msgspec.json.decode(line), env):
                return False
            continue
        names = PLACEHOLDER.findall(want)
        pattern = re.escape(substitute(want, env))
        for name in names:
            if name not in env:
                pattern = pattern.replace(re.escape(f"<{name}>"), f"(?P<{name}>\\S+)", 1)
        found = re.fullmatch(pattern, line)
        if found is None:
            return False
        env.update(found.groupdict())
    return True


async def replay_console(text: str, cwd: Path, broker: Broker) -> None:
    """Each ``$ `` line of the ``console`` blocks in ``text``, its output as shown."""
    env: dict[str, str] = {}
    for block in (b for b in blocks(text) if b.lang == "console"):
        steps: list[tuple[str, list[str]]] = []
        for line in block.code.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        for cmd, shown in steps:
            got = (await bash(cmd, cwd, broker)).splitlines()
            assert same(shown, got, env), f"{cmd}\nshown: {shown}\n  got: {got}"


def save(text: str, names: tuple[str, ...], where: Path, broker: Broker) -> None:
    """The blocks the text says to save as ``names``, saved there (on the test's ports)."""
    saved = {b.saved_as: b.code for b in blocks(text) if b.saved_as in names}
    assert sorted(saved) == sorted(names), saved
    for name, code in saved.items():
        assert code.count(README_PORT) == 1, name
        (where / name).write_text(broker.on_ports(code))


def running(
    line: str, cwd: Path, broker: Broker
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """A long-running command line as pasted (``exec``: the process is the program, which
    gets the Ctrl-C); killed on the way out if it is still running."""
    exec_line = f"exec {broker.on_ports(line)}"
    return started("bash", "-c", exec_line, cwd=cwd, env={"WONDERQ_PORT": str(broker.port)})


async def lines_until(proc: asyncio.subprocess.Process, count: int) -> list[str]:
    """The first ``count`` lines it prints (bounded by T)."""
    assert proc.stdout is not None
    out: list[str] = []
    async with asyncio.timeout(T):
        for _ in range(count):
            line = await proc.stdout.readline()
            assert line, f"it exited early after {out}"
            out.append(line.decode().rstrip("\n"))
    return out


async def ctrl_c(proc: asyncio.subprocess.Process) -> str:
    """Ctrl-C (SIGINT): it must exit 0 without a traceback or an error; its stderr."""
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(T):
        _, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Error" not in err, err
    return err.decode()


async def stats_of(broker: Broker, queue: str) -> dict[str, int]:
    async with await LineClient.connect(broker.port) as c:
        stats: dict[str, int] = (await c.call(op="STATS", queue=queue))["queues"][queue]
        return stats


# ---------------------------------------------------------------------- steps 1 and 2


async def test_step_1_is_make_serve_and_2_is_make_test() -> None:
    sh = [b.code for b in blocks(FIVE_MINUTES) if b.lang == "sh"]
    assert sh[:2] == ["make serve\n", "make test\n"]
    assert (await make_serve_command())[:2] == [".venv/bin/wonderq", "serve"]
    _, out, _ = await run("make", "-n", "--no-print-directory", "-C", str(ROOT), "test")
    for part in ("ruff check", "mypy", "pytest", "npm test"):
        assert part in out, part


async def test_make_serve_says_how_to_reach_it_and_that_works(clone: Path) -> None:
    async with make_serve(clone) as broker:
        port = f"--port {broker.port}"
        first, also = broker.hint
        tried = (
            f".venv/bin/wonderq put {port} jobs hello && .venv/bin/wonderq get {port} jobs --ack"
        )
        assert first == f"try it in another terminal: {tried}"
        console = f"http://127.0.0.1:{broker.http_port}/"
        assert also == (
            f"  also: .venv/bin/wonderq top {port} (a dashboard), nc 127.0.0.1 {broker.port} "
            f"(then type HELP), the web console at {console}; Ctrl-C stops the broker"
        )
        out = await bash(tried, clone, broker)
        put_id, delivered = out.splitlines()
        assert msgspec.json.decode(delivered) == {
            "id": put_id, "queue": "jobs", "body": "hello", "attempts": 1,
        }  # fmt: skip
        page = await bash(f"curl -sf {console}", clone, broker)
        assert "<title>" in page and "WonderQ" in page


# ---------------------------------------------------------------------- step 3


async def test_step_3_the_wonderq_commands_print_what_is_shown(clone: Path) -> None:
    async with make_serve(clone) as broker:
        await replay_console(FIVE_MINUTES, clone, broker)
        assert (await stats_of(broker, "jobs"))["acked"] == 1
        # "source .venv/bin/activate once in a shell and then just wonderq"
        assert "source .venv/bin/activate" in FIVE_MINUTES
        out = await bash("source .venv/bin/activate && wonderq queues", clone, broker)
        assert out == "jobs\n"


# ---------------------------------------------------------------------- step 4


def test_the_python_snippets_are_the_python_client_s_tested_ones() -> None:
    """The same text as clients/python/README.md's, whose tests run them on every backend."""
    code = [b.code for b in blocks(FIVE_MINUTES) if b.lang == "python"]
    assert code == [snippet("Producer"), snippet("Consumer")]
    assert all(len([x for x in c.splitlines() if x.strip()]) <= 10 for c in code)


async def test_step_4_producer_and_worker_saved_as_files_and_run(clone: Path) -> None:
    producer, note = command(".venv/bin/python producer.py")
    worker, worker_note = command(".venv/bin/python worker.py")
    assert note == "prints: queued 11 jobs" and "Ctrl-C stops it" in worker_note
    async with make_serve(clone) as broker:
        save(FIVE_MINUTES, ("producer.py", "worker.py"), clone, broker)
        assert await bash(producer, clone, broker) == "queued 11 jobs\n"
        async with running(worker, clone, broker) as proc:
            handled = await lines_until(proc, 11)
            said = await ctrl_c(proc)
        assert said.startswith("received SIGINT: the worker of 'jobs' takes no more messages")
        assert sorted(handled) == sorted(f"resizing image {n}" for n in [42, *range(10)])
        jobs = await stats_of(broker, "jobs")
        assert (jobs["acked"], jobs["ready"], jobs["leased"]) == (11, 0, 0)


# ---------------------------------------------------------------------- step 5


async def test_step_5_the_dashboard_shows_the_demo_and_quits_on_q(clone: Path) -> None:
    (top,) = (cmd for cmd, _ in shell_lines(FIVE_MINUTES) if cmd.endswith("wonderq top"))
    demo, _ = command(".venv/bin/wonderq demo")
    term = Terminal()
    try:
        async with make_serve(clone) as broker:
            await term.start(
                f"cd {shlex.quote(str(clone))} && WONDERQ_PORT={broker.port} {top}; "
                'echo "top exited $?"; sleep 30'
            )
            await term.until(lambda s: "connected" in s, "the dashboard connected")
            out = await bash(demo, clone, broker)
            assert "behaved as promised" in out, out
            await term.until(lambda s: "demo-" in s, "the demo's queues")
            await run_quietly(*term.tmux, "send-keys", "-t", "top", "q")
            screen = await term.until(lambda s: "top exited" in s, "top exiting on q")
            assert "top exited 0" in screen and "Traceback" not in screen, screen
    finally:
        await term.close()


# ---------------------------------------------------------------------- step 6


async def test_step_6_the_netcat_session_works_when_pasted(clone: Path) -> None:
    require_tool("nc", "netcat-openbsd")
    (printf,) = (cmd for cmd, _ in shell_lines(FIVE_MINUTES) if cmd.startswith("printf "))
    assert "| nc " in printf
    async with make_serve(clone) as broker:
        out = await bash(printf, clone, broker)
        replies = [msgspec.json.decode(line) for line in out.splitlines()]
        assert [r["ok"] for r in replies] == [True, True, True, True]
        bodies = [m["body"] for m in replies[2]["messages"]]
        assert bodies == ["hello world", {"task": "resize", "image": 42}]
        assert replies[3]["queues"]["jobs"]["leased"] == 2
        assert (await stats_of(broker, "jobs"))["ready"] == 2  # nc hung up: leases back
        # the JSON requests shown next work the same way, typed into nc
        (shown,) = (b.code for b in blocks(FIVE_MINUTES) if b.code.startswith('{"op"'))
        sent = await bash(
            f"printf '%s' {shlex.quote(shown)} | nc -q 1 127.0.0.1 7878", clone, broker
        )
        put, got = (msgspec.json.decode(line) for line in sent.splitlines())
        assert put == {"ok": True, "id": put["id"], "rid": 1}
        assert got["ok"] and got["rid"] == 2 and len(got["messages"]) == 3


# ---------------------------------------------------------------------- step 7


def test_the_node_snippets_are_the_node_client_s_tested_ones() -> None:
    """The Quick start of clients/node/README.md, which clients/node/test/readme.test.js runs."""
    node = (ROOT / "clients" / "node" / "README.md").read_text()
    quick_start = node.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    assert [b.code for b in blocks(FIVE_MINUTES) if b.lang == "js"] == [
        b.code for b in blocks(quick_start) if b.lang == "js"
    ]


async def test_step_7_node_producer_and_worker_saved_as_mjs_and_run(clone: Path) -> None:
    require_tool("node", "nodejs")
    require_tool("npm", "npm")
    install, _ = command("mkdir ")
    producer, note = command("node producer.mjs")
    worker, worker_note = command("node worker.mjs")
    assert note == "prints: queued <id>" and "Ctrl-C stops it" in worker_note
    (project,) = re.findall(r"\bcd (\S+)", install)
    async with make_serve(clone) as broker:
        await bash(install, clone, broker, env=QUIET_NPM)
        here = clone / project
        save(FIVE_MINUTES, ("producer.mjs", "worker.mjs"), here, broker)
        assert re.fullmatch(r"queued \S+\n", await bash(producer, here, broker))
        async with running(worker, here, broker) as proc:
            assert await lines_until(proc, 1) == ["sending to ada@example.com"]
            assert await ctrl_c(proc) == ""
        emails = await stats_of(broker, "emails")
        assert (emails["acked"], emails["ready"], emails["leased"]) == (1, 0, 0)


# ---------------------------------------------------------------------- Commands


def test_every_flag_the_commands_table_shows_is_its_command_s() -> None:
    rows = re.findall(r"^\| (.*?) \| .* \|$", section("Commands"), re.M)
    seen = set()
    for cell in rows:
        for name, usage in re.findall(r"`wonderq (\w+)([^`]*)`", cell):
            parser = subparsers(build_parser(name)).choices[name]
            known = {s for action in parser._actions for s in action.option_strings}
            shown = set(re.findall(r"--[a-z-]+", usage))
            assert shown <= known, (name, shown - known)
            seen.add(name)
    assert seen == set(SUBCOMMANDS)


# ---------------------------------------------------------------------- Clients


async def test_the_clients_examples_work_when_saved_and_pasted(clone: Path) -> None:
    clients = section("Clients")
    (python,) = (b.code for b in blocks(clients) if b.lang == "python")
    assert python == snippet("Blocking client, for scripts")
    require_tool("curl")
    async with make_serve(clone) as broker:
        (clone / "script.py").write_text(broker.on_ports(python))
        out = await bash(".venv/bin/python script.py", clone, broker)
        assert out == "sending to ada@example.com\n"
        await replay_console(clients, clone, broker)
        assert (await stats_of(broker, "jobs"))["ready"] == 1
