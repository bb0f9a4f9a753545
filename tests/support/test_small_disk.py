"""The small disk: a tmpfs of its own size, seen by the commands run in it; where it
cannot be mounted, a skip off CI and a failure on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import run
from tests.support import small_disk as module
from tests.support.small_disk import small_disk

MIB = 1024 * 1024


async def test_a_command_run_inside_sees_the_tmpfs_and_the_test_reaches_it(
    tmp_path: Path,
) -> None:
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    async with small_disk(mountpoint, 4 * MIB) as disk:
        code, _, err = await run(*disk.prefix, "sh", "-c", f'echo hi > "{mountpoint}/f"')
        assert code == 0, err
        assert disk.inside(mountpoint / "f").read_text() == "hi\n"
        fs = os.statvfs(disk.seen)
        assert fs.f_blocks * fs.f_frsize == 4 * MIB
    assert not (mountpoint / "f").exists()  # it was on the tmpfs, gone with its namespace


@pytest.mark.parametrize("ci", ["true", ""])
async def test_no_way_to_mount_skips_off_ci_and_fails_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(module, "_WAYS", ((("--no-such-flag",), ("--mount",)),))
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="cannot mount a small tmpfs"):
        async with small_disk(tmp_path, MIB):
            raise AssertionError("mounted with an unknown flag")
