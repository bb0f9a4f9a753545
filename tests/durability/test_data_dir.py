"""Rows 21, 22 and 23 of issue 18 against real broker processes: the data directory.

21: a disk full under ``--fsync always``, then 4 MiB freed: the restart takes
    writes again (the fill ahead never takes the room the data needs);
22: the directory is 0700 and every file 0600; a ``LOCK`` that is a symbolic
    link stops the start naming it, and its target is not written;
23: a log zeroed from the middle of the last segment to its end stops the start
    (naming the file, the offset and ``--recover``) and changes nothing;
    ``--recover`` moves the damaged bytes aside and goes on, loudly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.config import Config
from broker.durability.backend import DurableBackend
from broker.durability.files import segment_name
from broker.durability.replay import DurabilityError, ReplayState, scan
from tests.durability.broker_process import BrokerProcess
from tests.support import LineClient, run_python
from tests.support.small_disk import small_disk

MIB = 1024 * 1024


async def put_many(port: int, count: int, body: object = 1, batch: int = 100) -> list[str]:
    """PUT ``count`` messages on queue q, ``batch`` per request: the ids that got ok."""
    ids: list[str] = []
    async with await LineClient.connect(port) as c:
        for first in range(0, count, batch):
            n = min(batch, count - first)
            reply = await c.call(op="PUT", queue="q", messages=[{"body": body}] * n)
            if not reply["ok"]:
                assert reply["error"] == "unavailable", reply
                break
            ids += reply["ids"]
    return ids


async def ready(port: int) -> int:
    async with await LineClient.connect(port) as c:
        return int((await c.call(op="STATS", queue="q"))["queues"]["q"]["ready"])


def zero_from_the_middle(segment: Path) -> int:
    """Zero ``segment`` from its middle to its end; where its intact frames now end."""
    raw = bytearray(segment.read_bytes())
    half = len(raw) // 2
    raw[half:] = bytes(len(raw) - half)
    segment.write_bytes(bytes(raw))
    return scan(bytes(raw), str(segment), ReplayState()).good_end


async def serve_fails(data: Path, *args: str) -> str:
    code, _, err = await run_python(
        "-m", "broker", "serve", "--port", "0", "--no-http", "--data-dir", str(data), *args
    )
    assert code == 1, err
    return err


# ------------------------------------------------------------------ row 23


async def test_row_23_a_log_zeroed_from_its_middle_stops_the_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await BrokerProcess.start(data) as broker:  # --fsync everysec, the default
        assert len(await put_many(broker.port, 2000, batch=1)) == 2000  # one PUT at a time
        assert await broker.stop() == 0
    segment = data / segment_name(1)
    end = zero_from_the_middle(segment)
    damaged = segment.read_bytes()
    err = await serve_fails(data)
    assert f"corrupt log record in {segment} at offset {end}" in err, err
    assert "zeros to the end of the file" in err and "--recover" in err, err
    assert segment.read_bytes() == damaged and sorted(os.listdir(data)) == [
        "LOCK",
        segment_name(1),
    ]

    async with await BrokerProcess.start(data, "--recover") as broker:
        kept = await ready(broker.port)
        assert 0 < kept < 2000
    aside = data / f"{segment_name(1)}.damaged-{end}"
    assert aside.read_bytes() == damaged[end:]
    assert segment.read_bytes() == damaged[:end]
    log = broker.log.read_text()
    assert f"ERROR wonderq.durability: {segment}: damaged at offset {end}" in log, log
    assert f"aside into {aside}" in log, log
    async with await BrokerProcess.start(data) as broker:  # repaired: starts without --recover
        assert await ready(broker.port) == kept


async def test_row_23_with_fsync_always_after_a_crash(tmp_path: Path) -> None:
    """A kill -9 leaves the fill ahead after the data: zeros over data and fill are still
    damage, and the fill alone is still a torn tail (silent)."""
    data = tmp_path / "data"
    async with await BrokerProcess.start(data, "--fsync", "always") as broker:
        assert len(await put_many(broker.port, 600, batch=1)) == 600
        await broker.kill()
    segment = data / segment_name(1)
    raw = segment.read_bytes()
    data_end = scan(raw, str(segment), ReplayState()).good_end
    assert data_end < len(raw)  # the fill
    segment.write_bytes(raw[: data_end // 2] + bytes(len(raw) - data_end // 2))
    err = await serve_fails(data, "--fsync", "always")
    assert "zeros to the end of the file" in err, err
    segment.write_bytes(raw)  # as the crash left it: the fill is a torn tail
    async with await BrokerProcess.start(data, "--fsync", "always") as broker:
        assert await ready(broker.port) == 600
    assert "torn tail" in broker.log.read_text()


# ------------------------------------------------------------------ row 22


async def test_row_22_the_directory_is_0700_and_every_file_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:  # the broker inherits the umask most systems have
        broker = await BrokerProcess.start(data, "--compact-min", "1")
    finally:
        os.umask(old)
    async with broker:
        async with await LineClient.connect(broker.port) as c:
            for n in range(1000):  # the log grows, nothing stays live: a compaction starts
                await c.call(op="PUT", queue="q", body=n)
                got = (await c.call(op="GET", queue="q"))["messages"][0]
                assert (await c.call(op="ACK", id=got["id"]))["ok"]
                stats = await c.call(op="STATS")
                if stats["server"]["durability"]["compactions"]:
                    break
        assert stats["server"]["durability"]["compactions"] == 1, stats
        assert await broker.stop() == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert any(name.startswith("snap-") for name in modes), modes
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


async def test_row_22_an_older_wide_data_directory_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await BrokerProcess.start(data) as broker:
        await put_many(broker.port, 3)
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)  # as an older WonderQ left them
    async with await BrokerProcess.start(data) as broker:
        assert await ready(broker.port) == 3
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()} == {0o600}
    assert "had mode 0o755; tightened to 0700" in broker.log.read_text()


async def test_row_22_a_lock_that_is_a_link_stops_the_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    (data / "LOCK").symlink_to(victim)
    err = await serve_fails(data)
    assert f"{data / 'LOCK'} is a symbolic link (to {victim})" in err, err
    assert victim.read_bytes() == b"precious\n"


# ------------------------------------------------------------------ row 21


async def test_row_21_a_restart_after_a_full_disk_takes_writes(tmp_path: Path) -> None:
    """A 24 MiB tmpfs, 12 MiB taken by another file: PUTs until the disk is full
    (``unavailable``), stop, free 4 MiB, restart: PUTs are taken again and nothing
    acknowledged is lost. Before, the restarted broker's fill ahead took the 4 MiB
    and its first write failed."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    async with small_disk(mountpoint, 24 * MIB) as disk:
        filler = disk.inside(mountpoint / "filler")
        filler.write_bytes(bytes(12 * MIB))
        data = mountpoint / "data"
        log = tmp_path / "broker.log"
        body = "x" * 1000
        always = ("--fsync", "always", "--no-http")
        async with await BrokerProcess.start(data, *always, prefix=disk.prefix, log=log) as b:
            acked = await put_many(b.port, 100_000, body=body, batch=50)
            assert 0 < len(acked) < 100_000  # the disk filled up
            await b.stop()
        free = os.statvfs(disk.seen)
        assert free.f_bavail * free.f_frsize < MIB
        os.truncate(filler, 8 * MIB)  # 4 MiB freed
        async with await BrokerProcess.start(data, *always, prefix=disk.prefix, log=log) as b:
            more = await put_many(b.port, 1000, body=body, batch=50)
            assert len(more) == 1000, log.read_text()  # about 1.1 MB: it fits
            held = await ready(b.port)
            assert len(acked) + 1000 <= held <= len(acked) + 1050  # the batch refused may be
            free = os.statvfs(disk.seen)
            assert free.f_bavail * free.f_frsize >= MIB  # the fill left room


async def test_a_data_dir_that_cannot_be_used_is_named_in_the_error(tmp_path: Path) -> None:
    """The backend names the directory (serve checks a file in its place before, with
    exit code 2: tests/cli/test_serve_data_dir.py; this is what an embedder sees)."""
    data = tmp_path / "data"
    data.write_bytes(b"a file, not a directory")
    backend = DurableBackend(Config(data_dir=str(data)))
    with pytest.raises(DurabilityError, match=f"cannot use data directory {data}: .*File exists"):
        await backend.start()
