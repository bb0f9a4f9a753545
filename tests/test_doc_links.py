"""Every relative link of the documentation resolves: README.md, docs/*.md, protocol.md and
the clients' READMEs link to files that exist and to headings those files have (anchors as
GitHub makes them), so moving a section cannot leave a reader at a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_protocol_doc import ROOT

PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "protocol.md",
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("clients/*/README.md"),
    ]
)
#: [text](target) and ![alt](target), the target up to a space or the closing bracket
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text without its code blocks and inline code (a link there is not a link)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, the repeated ones numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text()))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


def test_the_slug_is_github_s() -> None:
    assert slug("Round 5: an honest harness (issue 17, branch bench-harness)") == (
        "round-5-an-honest-harness-issue-17-branch-bench-harness"
    )
    assert slug("The floor (`broker/bench/floor.py`, `--compare floor`)") == (
        "the-floor-brokerbenchfloorpy---compare-floor"
    )
    assert slug("Scale out: many nodes sharing their queues in Redis") == (
        "scale-out-many-nodes-sharing-their-queues-in-redis"
    )


def test_the_checker_sees_links_and_skips_code() -> None:
    text = "see [a](x.md#b) and ![pic](p.png)\n`[not](y.md)`\n```\n[no](z.md)\n```\n"
    assert LINK.findall(prose(text)) == ["x.md#b", "p.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        goal = (page.parent / path).resolve() if path else page
        if not goal.exists():
            broken.append(f"{target}: no such file")
        elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
            broken.append(f"{target}: no heading with that anchor in {goal.name}")
    assert broken == [], broken


def test_the_readme_links_every_docs_page() -> None:
    targets = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    for page in sorted(ROOT.glob("docs/*.md")):
        assert f"docs/{page.name}" in targets, f"README.md does not link {page.name}"
