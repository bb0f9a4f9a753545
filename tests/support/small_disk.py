"""A small file system of a test's own: a tmpfs of a given size in a private mount namespace.

Owns: mounting it (``unshare --mount``, or ``unshare --user --map-root-user
--mount`` where a user may not mount but may make a user namespace), the process
that holds the namespace (a ``sleep``, stopped by its PID when the block ends:
the namespace and the tmpfs go with it), the command prefix that runs a program
inside it (``nsenter``, which execs the program: its PID stays the program's),
and the path through which the test itself reads and writes the tmpfs
(``/proc/<holder>/root/...``). Nothing is mounted in the test's own namespace,
so nothing can be left mounted on the machine.

Where neither works (no root, no user namespaces: a container without
CAP_SYS_ADMIN), the test is skipped saying so, and fails when ``CI=true``
(``require``): a disk-full test that did not run is not a pass.
Never: leaves the holder running, or waits without a bound.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import require

READY_TIMEOUT_S = 10.0
HOLD_S = 900  # the holder's own bound, past any test's timeout
_MOUNT = 'mount -t tmpfs -o "size=$1,mode=0755" tmpfs "$2" && echo ready && exec sleep "$3"'
# (unshare flags, matching nsenter flags): as root, then as a user in a user namespace
_WAYS = (
    (("--mount",), ("--mount",)),
    (("--user", "--map-root-user", "--mount"), ("--user", "--mount", "--preserve-credentials")),
)


@dataclass(frozen=True)
class SmallDisk:
    mountpoint: Path  # where programs run with ``prefix`` see it
    seen: Path  # the same directory, as this process sees it
    prefix: tuple[str, ...]  # runs a command inside the namespace

    def inside(self, path: Path) -> Path:
        """``path`` (under ``mountpoint``) as this process reaches it."""
        return self.seen / path.relative_to(self.mountpoint)


@asynccontextmanager
async def small_disk(mountpoint: Path, size_bytes: int) -> AsyncIterator[SmallDisk]:
    """A tmpfs of ``size_bytes`` at ``mountpoint`` (an existing empty directory),
    visible to commands run with the returned ``prefix``."""
    unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
    require(
        unshare is not None and nsenter is not None,
        "unshare and nsenter are missing (apt-get install util-linux)",
    )
    assert unshare is not None and nsenter is not None
    errors = []
    for unshare_flags, nsenter_flags in _WAYS:
        proc = await asyncio.create_subprocess_exec(
            unshare, *unshare_flags, "sh", "-c", _MOUNT, "sh",
            str(size_bytes), str(mountpoint), str(HOLD_S),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                ready = await proc.stdout.readline() == b"ready\n"
                if not ready:
                    errors.append((await proc.stderr.read()).decode().strip())
            if ready:
                prefix = (nsenter, "--target", str(proc.pid), *nsenter_flags, "--")
                seen = Path(f"/proc/{proc.pid}/root") / mountpoint.relative_to("/")
                yield SmallDisk(mountpoint, seen, prefix)
                return
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    require(
        False,
        "cannot mount a small tmpfs in a private mount namespace (needs root or "
        f"CAP_SYS_ADMIN, or user namespaces: unshare --mount): {'; '.join(errors)}",
    )
