"""The data directory on start: which files hold the state, and reading them back.

Owns: what the data directory's files mean, and the recovery rule (their names,
modes and how they are opened are ``files.py``'s). Files:
  - ``snap-K.wqs``: a snapshot, the whole state as of the start of segment K
    (written to ``.tmp``, fsynced, then renamed: if it exists it is complete);
  - ``log-N.wql``: segments, appended in order; a new one per start and per
    compaction, created only after the previous one was fsynced (and cut to
    its data);
  - ``LOCK``: see ``lock.py``.
State = the newest snapshot K (if any) + segments K, K+1, ... in order. Older
files are leftovers of a compaction that crashed after its snapshot was in
place; ``*.tmp`` files are snapshots that were never finished. Both are deleted.

How a file may end (``tail.py`` tells a torn tail from damage):
  - only the newest segment may end in a torn tail (a crash interrupted a
    write): it is reported (a warning) and cut off, as that write never
    completed;
  - damage anywhere, and a torn tail in a snapshot or an older segment (those
    were complete before the next file began), stops the start with
    ``CorruptLog`` naming the file, the offset, what follows (how many intact
    frames and records would be lost), and ``--recover``. Nothing is changed.
  - with ``--recover`` (``go_on``) the bytes from the bad offset to the end of
    that file are moved aside into ``<file>.damaged-<offset>`` (0600, fsynced),
    the file is cut there, an error is logged naming both, and the replay goes
    on with the next file. A damaged file is never just truncated in place.
Must never: change, move or delete anything before the whole state was read
back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from broker.durability import files
from broker.durability.replay import CorruptLog, ReplayState, Scan, scan
from broker.durability.tail import FILL_ONLY

log = logging.getLogger("wonderq.durability")

RECOVER_FLAG = "--recover"
# the files of the state, by what they may end in
_SNAPSHOT, _SEGMENT, _NEWEST = "snapshot", "segment", "newest segment"


@dataclass(slots=True)
class Recovered:
    state: ReplayState
    next_segment: int  # the segment this run writes to
    log_bytes: int  # bytes of the files that hold the state
    notes: list[str] = field(default_factory=list)  # torn tails cut off
    moved_aside: list[str] = field(default_factory=list)  # damage moved aside (--recover)


@dataclass(frozen=True, slots=True)
class _Cut:
    """A file to cut at ``offset`` once the whole state was read."""

    path: str
    offset: int
    size: int
    why: str  # why it is torn, or what the damage is
    damaged: bool  # moved aside first (--recover), not just cut


def recover(directory: str, *, go_on: bool = False) -> Recovered:
    """Read the state back; ``go_on`` (``--recover``): move damage aside and go on."""
    listing = files.list_files(directory)
    base = listing.snapshots[-1] if listing.snapshots else None
    used = [n for n in listing.segments if base is None or n >= base]
    first = base if base is not None else 1
    if used and used != list(range(first, first + len(used))):
        missing = sorted(set(range(first, used[-1] + 1)) - set(used))
        raise CorruptLog(files.segment_path(directory, missing[0]), 0, "segment file is missing")
    state = ReplayState()
    out = Recovered(state, (used[-1] if used else first - 1) + 1, 0)
    kinds = [(files.segment_path(directory, n), _SEGMENT) for n in used]
    if kinds:
        kinds[-1] = (kinds[-1][0], _NEWEST)
    if base is not None:
        kinds.insert(0, (files.snapshot_path(directory, base), _SNAPSHOT))
    cuts: list[_Cut] = []
    for path, kind in kinds:
        data = files.read(path)
        result = scan(data, path, state)
        out.log_bytes += result.good_end
        if result.good_end < len(data):
            cuts.append(_judge(path, kind, result, len(data), go_on))
    for cut in cuts:
        _apply(cut, out)
    _remove_leftovers(directory, listing, base)
    return out


def _judge(path: str, kind: str, result: Scan, size: int, go_on: bool) -> _Cut:
    """What to do about a file whose frames stop at ``result.good_end`` (raises if stopping)."""
    offset = result.good_end
    if result.damage is None and kind == _NEWEST:
        return _Cut(path, offset, size, str(result.torn), False)
    if result.damage is not None:
        why = result.damage
    elif kind == _SNAPSHOT:  # a snapshot is fsynced before it is renamed
        why = f"snapshot is cut short ({result.torn})"
    else:  # a segment is fsynced and cut to its data before the next one begins
        why = f"torn record before the last segment ({result.torn})"
    if not go_on:
        raise CorruptLog(
            path,
            offset,
            why,
            f"Start once with {RECOVER_FLAG} to move the {size - offset} bytes from offset "
            f"{offset} to the end aside into {path}{files.DAMAGED_INFIX}{offset} and go on "
            "without them.",
        )
    return _Cut(path, offset, size, why, True)


def _apply(cut: _Cut, out: Recovered) -> None:
    dropped = cut.size - cut.offset
    if not cut.damaged:
        if cut.why == FILL_ONLY:
            cause = "the server did not stop cleanly"
        else:
            cause = "a crash interrupted a write"
        note = (
            f"{cut.path}: torn tail at offset {cut.offset} ({cut.why}); "
            f"truncated {dropped} bytes ({cause})"
        )
        log.warning("%s", note)
        out.notes.append(note)
        files.truncate(cut.path, cut.offset)
        return
    aside = files.move_aside(cut.path, cut.offset)
    note = (
        f"{cut.path}: damaged at offset {cut.offset}: {cut.why}; {RECOVER_FLAG}: moved the "
        f"{dropped} bytes from there to the end aside into {aside} and cut the file there; "
        "the records in them are not in the broker"
    )
    log.error("%s", note)
    out.moved_aside.append(note)


def _remove_leftovers(directory: str, listing: files.Listing, base: int | None) -> None:
    doomed = listing.unfinished + ([] if base is None else listing.older_than(base))
    for name in doomed:
        log.info("removing leftover %s", name)
    files.remove(directory, doomed)
