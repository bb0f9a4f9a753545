"""``wonderq serve --data-dir`` with a path it cannot use: the error names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import BrokerProcess, run_python


async def serve_fails(data_dir: str) -> str:
    code, out, err = await run_python(
        "-m", "broker", "serve", "--port", "0", "--no-http", "--data-dir", data_dir, timeout_s=20
    )
    assert code == 2 and "listening" not in out, (code, out, err)
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("afile", "wonderq serve: --data-dir {dir}/afile is a file, not a directory"),
        (
            "afile/sub",
            "wonderq serve: --data-dir {dir}/afile/sub: {dir}/afile is a file, not a directory",
        ),
    ],
)
async def test_a_file_where_the_directory_should_be(
    tmp_path: Path, given: str, message: str
) -> None:
    (tmp_path / "afile").write_text("not a directory")
    assert await serve_fails(str(tmp_path / given)) == message.format(dir=tmp_path)


async def test_a_directory_that_cannot_be_made_or_written_in() -> None:
    # /proc takes no new directories, and no one may create files in /sys (not even root)
    assert await serve_fails("/proc/wonderq-data") == (
        "wonderq serve: --data-dir /proc/wonderq-data cannot be made: No such file or directory"
    )
    err = await serve_fails("/sys")
    assert err.startswith("wonderq serve: --data-dir /sys is not writable by this user (uid ")


async def test_a_missing_directory_is_made(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    log = tmp_path / "broker.log"
    async with await BrokerProcess.start_with(log, "--no-http", "--data-dir", str(data)):
        assert data.is_dir()
