"""``wonderq serve``'s flags, generated from the ``Config`` settings: each one parsed, shown with
its default, and bounded with an error that names it."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pytest

from broker.cli import build_parser
from broker.cli.serve import config_from_args
from broker.config import (
    BYTES,
    INTEGER,
    KIB,
    MIB,
    SECONDS,
    SETTINGS,
    TEXT,
    TOKEN_HOW,
    Config,
    Kind,
    format_size,
    parse_size,
    setting,
)
from tests.support import run_python


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WONDERQ_TOKEN", raising=False)


def serve_config(*argv: str) -> Config:
    return config_from_args(build_parser("serve").parse_args(["serve", *argv]))


def serve_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser("serve").parse_args(["serve", "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_no_flags_is_the_default_config() -> None:
    assert serve_config() == Config()


def test_the_help_shows_every_setting_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = serve_help(capsys)
    for named in SETTINGS:
        how = named.setting
        default = f": {how.unset}" if named.default is None else f" {how.kind.show(named.default)}"
        assert f"--{how.flag} " in text
        assert " ".join(f"{how.help} (default{default})".split()) in text, how.flag


def test_the_help_shows_the_defaults_as_they_are_typed(capsys: pytest.CaptureFixture[str]) -> None:
    text = serve_help(capsys)
    for shown in (
        "--max-body SIZE largest message body in bytes (default 256k)",
        "--lease SECONDS default lease in seconds (default 30)",
        "--port PORT port to listen on; 0 picks a free one (default 7878)",
        "--max-queue-length N messages a queue may hold (default: unlimited)",
        "--fsync {always,everysec,no} with --data-dir: always (reply after fsync), everysec or no "
        "(default everysec)",
        "(default 64m)",
        "--token-file TOKEN_FILE",  # the flags that are not settings are still there
        "--log-format {text,json}",
    ):
        assert shown in text


def test_each_shown_default_parses_back_to_the_default() -> None:
    argv = [
        f"--{named.setting.flag}={named.setting.kind.show(named.default)}"
        for named in SETTINGS
        if named.default is not None
    ]
    assert serve_config(*argv) == Config()


#: a value of each kind that every setting of that kind accepts, and that is no default
SAMPLES: dict[Kind, str] = {INTEGER: "100", BYTES: "100k", SECONDS: "2.5", TEXT: "x" * 16}


@pytest.mark.parametrize("named", SETTINGS, ids=[n.setting.flag for n in SETTINGS])
def test_each_flag_sets_its_own_field_and_no_other(named: Any) -> None:
    how = named.setting
    text = next(c for c in how.choices if c != named.default) if how.choices else SAMPLES[how.kind]
    config = serve_config(f"--{how.flag}", text)
    assert getattr(config, named.name) == how.kind.parse(text) != named.default
    assert asdict(replace(config, **{named.name: named.default})) == asdict(Config())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-body", "1k"], {"max_body": KIB}),
        (["--max-body", "2MiB"], {"max_body": 2 * MIB}),
        (["--max-body=0.5k"], {"max_body": 512}),
        (["--max-memory", "1g"], {"max_memory": 1024 * MIB}),
        (["--compact-min", "1m", "--max-line", "64"], {"compact_min_bytes": MIB, "max_line": 64}),
        (["--host", "0.0.0.0", "--port", "0"], {"host": "0.0.0.0", "port": 0}),
        (["--lease", "2.5", "--idle-timeout", "1.5"], {"lease_s": 2.5, "idle_timeout_s": 1.5}),
        (["--data-dir", "/d", "--fsync", "always"], {"data_dir": "/d", "fsync": "always"}),
        (["--data-dir", "/d", "--recover"], {"data_dir": "/d", "recover": True}),
        (["--token", "s3cret-s3cret-s3cret"], {"token": "s3cret-s3cret-s3cret"}),
        (
            ["--acked-history", "0", "--max-queue-length", "7"],
            {"acked_history": 0, "max_queue_length": 7},
        ),
    ],
)
def test_flags_make_the_config(argv: list[str], expected: dict[str, Any]) -> None:
    assert serve_config(*argv) == Config(**expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lease", "0"], "lease must be > 0 seconds"),
        (["--max-attempts", "0"], "max-attempts must be >= 1"),
        (["--max-body", "0"], "max-body must be >= 1 byte"),
        (["--max-queue-length", "0"], "max-queue-length must be >= 1"),
        (["--max-batch", "0"], "max-batch must be >= 1"),
        (["--max-get", "0"], "max-get must be >= 1"),
        (["--max-line", "63"], "max-line must be >= 64 bytes"),
        (["--max-memory", "0"], "max-memory must be >= 1 byte"),
        (["--acked-history", "-1"], "acked-history must be >= 0"),
        (["--port", "65536"], "port must be 0-65535"),
        (["--port", "-1"], "port must be 0-65535"),
        (["--max-connections", "0"], "max-connections must be >= 1"),
        (["--idle-timeout", "-1"], "idle-timeout must be >= 0"),
        (["--compact-min", "0"], "compact-min must be >= 1 byte"),
        (["--recover"], "recover needs --data-dir (it repairs a durable log)"),
        (
            ["--token", "x" * 4097],
            f"token must be 16-4096 characters (a shorter one can be guessed; {TOKEN_HOW})",
        ),
        (["--token", ""], "the token is empty"),
    ],
)
def test_a_value_out_of_bounds_names_its_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        serve_config(*argv)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-body", "zz"], "argument --max-body: not a size: 'zz' (e.g. 262144, 256k, 1m)"),
        (["--max-attempts", "1.5"], "argument --max-attempts: invalid int value: '1.5'"),
        (["--lease", "x"], "argument --lease: invalid float value: 'x'"),
        (
            ["--fsync", "sometimes"],
            "argument --fsync: invalid choice: 'sometimes' (choose from 'always', 'everysec', 'no')",
        ),
    ],
)
def test_a_value_that_does_not_parse_is_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve_config(*argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"wonderq serve: error: {message}")


async def test_serve_reports_a_bad_setting_and_exits_2() -> None:
    code, out, err = await run_python("-m", "broker", "serve", "--port", "0", "--max-batch", "0")
    assert (code, out, err) == (2, "", "wonderq serve: max-batch must be >= 1\n")


def test_config_checks_its_bounds_without_the_cli() -> None:
    with pytest.raises(ValueError, match=r"^max-get must be >= 1$"):
        Config(max_get=0)
    with pytest.raises(ValueError, match=r"^fsync must be always, everysec or no$"):
        Config(fsync="sometimes")
    assert Config(max_queue_length=None, idle_timeout_s=0).max_queue_length is None


def test_a_setting_that_defaults_to_none_must_say_what_none_means() -> None:
    with pytest.raises(TypeError, match="max-widgets"):
        setting(None, "max-widgets", "widgets a queue may hold")


def test_the_token_is_kept_out_of_repr() -> None:
    assert "s3cret-s3cret-s3cret" not in repr(Config(token="s3cret-s3cret-s3cret"))


@pytest.mark.parametrize("size", [1, 64, 1000, KIB, 1536, 256 * KIB, MIB, 64 * MIB, 3 * 1024 * MIB])
def test_sizes_are_shown_as_they_parse(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_size_formats() -> None:
    assert [format_size(n) for n in (1000, KIB, 1536, 256 * KIB, 64 * MIB)] == [
        "1000",
        "1k",
        "1536",
        "256k",
        "64m",
    ]
    assert parse_size(" 2GiB ") == parse_size("2g") == 2 * 1024 * MIB
    with pytest.raises(ValueError, match=r"not a size: 'lots'"):
        parse_size("lots")
