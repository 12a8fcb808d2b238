"""Render the benchmark results (``benchmarks/out/*.json``) into ``docs/performance.md``, so that a
re-measurement is a regenerated file, not an edited paragraph.

Each JSON file becomes one section between the markers below: its scalar fields as a table (``key`` the dotted
path), and each list of records (e.g. the cases of a benchmark) as a table of its own. Nothing is typed by
hand between the markers; ``tests/unit/test_docs.py`` checks that the page equals the rendering.

    python benchmarks/render.py            # rewrite the rendered part of docs/performance.md
    python benchmarks/render.py --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
PAGE = REPO / "docs" / "performance.md"
BEGIN = "<!-- rendered from benchmarks/out/*.json by benchmarks/render.py; do not edit by hand -->"
END = "<!-- end of the rendered part -->"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _flatten(value: Any, key: str = "") -> tuple[dict[str, Any], dict[str, list[dict]]]:
    """(scalars by dotted key, lists of records by dotted key) of a JSON value."""
    scalars: dict[str, Any] = {}
    records: dict[str, list[dict]] = {}
    if isinstance(value, dict):
        for name, item in value.items():
            inner_scalars, inner_records = _flatten(item, f"{key}.{name}" if key else name)
            scalars |= inner_scalars
            records |= inner_records
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        records[key] = value
    else:
        scalars[key] = value
    return scalars, records


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def render_file(path: Path) -> list[str]:
    """The Markdown section of one benchmark JSON file."""
    scalars, records = _flatten(json.loads(path.read_text(encoding="utf-8")))
    lines = [f"### `benchmarks/out/{path.name}`", ""]
    if scalars:
        lines += _table(["field", "value"], [[k, _cell(v)] for k, v in scalars.items()]) + [""]
    for key, rows in records.items():
        columns = list(dict.fromkeys(c for row in rows for c in row))
        lines += [f"`{key}`:", ""]
        lines += _table(columns, [[_cell(row.get(c, "")) for c in columns] for row in rows]) + [""]
    return lines


def render(out: Path = OUT) -> str:
    """The rendered part of the page (markers included), one section per JSON file in name order."""
    files = sorted(out.glob("*.json"))
    body = [line for path in files for line in render_file(path)] or ["(no benchmark JSON committed yet)", ""]
    return "\n".join([BEGIN, "", *body, END])


def updated_page(page: str, rendered: str) -> str:
    """``page`` with its rendered part replaced (appended under a heading when the page has none yet)."""
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        return head + rendered + rest.split(END, 1)[1]
    return page.rstrip("\n") + "\n\n## Rendered benchmark results\n\n" + rendered + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/performance.md is out of date")
    args = parser.parse_args(argv)
    page = PAGE.read_text(encoding="utf-8")
    new = updated_page(page, render())
    if args.check:
        sys.exit(0 if new == page else 1)
    PAGE.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
