"""The data directory on start: which files hold the state, and reading them back.

Owns: what the data directory's files mean, and the recovery rule (their names
and listing are ``files.py``'s). Files:
  - ``snap-K.wqs``: a snapshot, the whole state as of the start of segment K
    (written to ``.tmp``, fsynced, then renamed: if it exists it is complete);
  - ``log-N.wql``: segments, appended in order; a new one per start and per
    compaction, created only after the previous one was fsynced;
  - ``LOCK``: see ``lock.py``.
State = the newest snapshot K (if any) + segments K, K+1, ... in order. Older
files are leftovers of a compaction that crashed after its snapshot was in
place; ``*.tmp`` files are snapshots that were never finished. Both are deleted.
Only the newest segment may end in a torn record (a crash mid-append): it is
reported and truncated. Anything else wrong raises ``CorruptLog``.
Must never: delete or truncate anything before the whole state was read back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from broker.durability import files
from broker.durability.replay import CorruptLog, ReplayState, scan

log = logging.getLogger("wonderq.durability")


@dataclass(slots=True)
class Recovered:
    state: ReplayState
    next_segment: int  # the segment this run writes to
    log_bytes: int  # bytes of the files that hold the state
    notes: list[str] = field(default_factory=list)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def recover(directory: str) -> Recovered:
    listing = files.list_files(directory)
    base = listing.snapshots[-1] if listing.snapshots else None
    used = [n for n in listing.segments if base is None or n >= base]
    first = base if base is not None else 1
    if used and used != list(range(first, first + len(used))):
        missing = sorted(set(range(first, used[-1] + 1)) - set(used))
        raise CorruptLog(files.segment_path(directory, missing[0]), 0, "segment file is missing")
    state = ReplayState()
    out = Recovered(state, (used[-1] if used else first - 1) + 1, 0)
    if base is not None:
        path = files.snapshot_path(directory, base)
        data = _read(path)
        result = scan(data, path, state)
        if result.torn is not None:  # a snapshot is fsynced before it is renamed
            raise CorruptLog(path, result.good_end, f"snapshot is cut short ({result.torn})")
        out.log_bytes += len(data)
    for n in used:
        path = files.segment_path(directory, n)
        data = _read(path)
        result = scan(data, path, state)
        out.log_bytes += result.good_end
        if result.torn is None:
            continue
        if n != used[-1]:
            raise CorruptLog(
                path, result.good_end, f"torn record before the last segment ({result.torn})"
            )
        cut = len(data) - result.good_end
        if result.torn == "zero-filled tail":  # the space filled ahead of the data
            why = "the server did not stop cleanly"
        else:
            why = "a crash interrupted a write"
        note = (
            f"{path}: torn tail at offset {result.good_end} ({result.torn}); "
            f"truncated {cut} bytes ({why})"
        )
        log.warning("%s", note)
        out.notes.append(note)
        with open(path, "r+b") as f:
            f.truncate(result.good_end)
            os.fsync(f.fileno())
    _remove_leftovers(directory, listing, base)
    return out


def _remove_leftovers(directory: str, listing: files.Listing, base: int | None) -> None:
    doomed = listing.unfinished + ([] if base is None else listing.older_than(base))
    for name in doomed:
        log.info("removing leftover %s", name)
    files.remove(directory, doomed)
