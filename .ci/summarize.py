"""Print one closing line summing pytest's and node --test's counts from a CI log."""

from __future__ import annotations

import re
import sys


def main(path: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    passed = failed = skipped = 0
    for line in text.splitlines():
        if re.match(r"^=+ .* in [\d.]+s", line):  # pytest's closing line
            for n, word in re.findall(
                r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", line
            ):
                if word == "passed":
                    passed += int(n)
                elif word in ("failed", "error", "errors"):
                    failed += int(n)
                elif word in ("skipped", "xfailed"):
                    skipped += int(n)
        elif m := re.match(r"^# (pass|fail|skipped|cancelled) (\d+)$", line):  # node --test
            n = int(m.group(2))
            if m.group(1) == "pass":
                passed += n
            elif m.group(1) in ("fail", "cancelled"):
                failed += n
            else:
                skipped += n
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main(sys.argv[1])
