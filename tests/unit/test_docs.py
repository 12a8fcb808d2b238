"""The README and docs/ stay true to the files they cite: the test command CI greps, the table rows copied from
the committed tables, and every relative link.

Run: python -m pytest tests/unit/test_docs.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, REPO / "experiments" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_holds_the_test_command_that_ci_runs():
    # .ci/run greps this line and runs it verbatim
    assert "./install.sh && .venv/bin/python -m pytest" in README.read_text().splitlines()


def test_readme_table_rows_are_rows_of_the_committed_table():
    text = README.read_text()
    source = re.search(r"`(paper_tables/\S+\.md)`:\n\n((?:\|.*\n)+)", text)
    assert source, "the README's key table, introduced by its file name"
    committed = (REPO / source.group(1)).read_text().splitlines()
    missing = [row for row in source.group(2).splitlines() if row not in committed]
    assert missing == [], f"rows differ from {source.group(1)}: copy them again"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"
