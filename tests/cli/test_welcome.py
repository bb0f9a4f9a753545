"""What ``wonderq serve`` prints once it listens: the client command as it was started, with
the flags this broker needs. (tests/test_readme.py runs the lines ``make serve`` prints.)"""

from __future__ import annotations

import sys
from pathlib import Path

from broker.cli.welcome import Listening, command_name, how_to_reach
from tests.support import BrokerProcess, run


def test_the_command_is_repeated_as_it_was_started(tmp_path: Path) -> None:
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "wonderq").touch()
    started = str(venv / "wonderq")
    # make serve: .venv/bin/wonderq, not on PATH
    assert command_name(".venv/bin/wonderq", lambda _: None) == ".venv/bin/wonderq"
    # the venv activated: the one on PATH is this one
    assert command_name(started, lambda _: started) == "wonderq"
    # another wonderq on PATH: this one's path, which is the one that reaches this version
    assert command_name(started, lambda _: "/usr/bin/wonderq") == started
    # python -m broker serve
    assert command_name("/x/broker/__main__.py", lambda _: None) == "wonderq"


def test_the_default_address_needs_no_flags() -> None:
    at = Listening("127.0.0.1", 7878, "http://127.0.0.1:7879/", token=False, tls=False)
    assert how_to_reach(".venv/bin/wonderq", at) == [
        "try it in another terminal: .venv/bin/wonderq put jobs hello && "
        ".venv/bin/wonderq get jobs --ack",
        "  also: .venv/bin/wonderq top (a dashboard), nc 127.0.0.1 7878 (then type HELP), "
        "the web console at http://127.0.0.1:7879/; Ctrl-C stops the broker",
    ]


def test_another_address_a_token_and_tls_are_named_and_the_token_never_printed() -> None:
    at = Listening("10.0.0.5", 7000, None, token=True, tls=True)
    assert how_to_reach("wonderq", at) == [
        "try it in another terminal (with WONDERQ_TOKEN set): "
        "wonderq put --host 10.0.0.5 --port 7000 --tls-ca CERT.pem jobs hello && "
        "wonderq get --host 10.0.0.5 --port 7000 --tls-ca CERT.pem jobs --ack",
        "  also: wonderq top --host 10.0.0.5 --port 7000 --tls-ca CERT.pem (a dashboard); "
        "Ctrl-C stops the broker",
    ]  # no nc under TLS, no console without HTTP


def test_every_interface_is_reached_on_loopback() -> None:
    at = Listening("0.0.0.0", 7878, None, token=False, tls=False)
    first, also = how_to_reach("wonderq", at)
    assert "--host" not in first and "nc 127.0.0.1 7878" in also


async def test_serve_prints_it_after_the_listening_lines_and_its_put_get_works(
    tmp_path: Path,
) -> None:
    token = "welcome-test-token-0123456789"
    env = {"WONDERQ_TOKEN": token}
    async with await BrokerProcess.start_with(tmp_path / "log", env=env) as broker:
        assert (await broker.stdout_line()).startswith("http on 127.0.0.1:")
        first = await broker.stdout_line()
        assert (await broker.stdout_line()).startswith("  also: wonderq top --port ")
        intro = "try it in another terminal (with WONDERQ_TOKEN set): "
        assert first.startswith(intro) and token not in first
        pasted = first[len(intro) :].replace("wonderq ", f"{sys.executable} -m broker ")
        code, out, err = await run("bash", "-c", pasted, env=env, cwd=tmp_path)
        assert code == 0, err
        assert out.splitlines()[1].endswith('"body":"hello","attempts":1}')
