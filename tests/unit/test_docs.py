"""The README and docs/ stay true to the files they cite: the test command CI greps, the table rows copied from
the committed tables, and every relative link.

Run: python -m pytest tests/unit/test_docs.py
"""

from __future__ import annotations

import json
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


def _render_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", REPO / "benchmarks" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_performance_page_renders_the_committed_benchmark_json():
    render = _render_module()
    page = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert render.updated_page(page, render.render()) == page, "run: python benchmarks/render.py"


def test_a_benchmark_json_becomes_tables_of_its_fields_and_records(tmp_path):
    render = _render_module()
    (tmp_path / "x.json").write_text(json.dumps({"jobs": 120, "ratio": 0.83333, "cases": [
        {"case": "lean", "time_s": 1.5}, {"case": "plain", "time_s": 2.0, "note": "baseline"}]}))
    text = render.render(tmp_path)
    assert "| jobs | 120 |" in text and "| ratio | 0.8333 |" in text
    assert "| case | time_s | note |" in text and "| plain | 2 | baseline |" in text
    page = render.updated_page("# P\n", text)
    assert render.updated_page(page, text) == page  # idempotent once the markers are there
