"""Publish the report: copy the regenerated tables and figures into the deliverable folders and say whether the
tables equal the ones already there (on a fresh clone: the committed ones).

The workflow's report rules write under ``results/<exp>/report/``; the last rule, ``publish``, runs this module,
which compares each regenerated file with the file of the same name in ``paper_tables/<exp>/`` or
``figures/<exp>/`` before overwriting it:

- tables (``.md``, ``.tex``, ``.csv``): byte for byte apart from the provenance line (``Provenance: ...``, which
  carries the git SHA); their ``.provenance.json`` sidecars as JSON apart from ``VOLATILE_KEYS`` (git SHA,
  package versions, dates);
- figures: by their data, the JSON sidecar ``<figure>.png.data.json`` that ``ual.report.figures.save_figure``
  writes beside every figure it draws (compared as a sidecar); a PNG or PDF may differ by renderer, so a
  figure without one (``fig_clusters``, copied from the clustering stage) is reported as
  "figure data not compared".

It prints "tables identical to the committed ones" or the list of what differs (file, first differing line,
both versions of that line), writes the same as JSON to ``--out`` (the workflow's default target
``results/<exp>/published.json``), and copies only files whose bytes changed.

    python -m ual.report.publish --tables results/tiny/report/tables/* --figures results/tiny/report/figures/* \\
        --tables-dest paper_tables/tiny --figures-dest figures/tiny --out results/tiny/published.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

from ual.provenance import sidecar_path, write_json

# Sidecar fields that differ between two runs of the same code on the same data.
VOLATILE_KEYS = frozenset(
    {"git_sha", "git_dirty", "versions", "created_utc", "generated_utc", "date", "host"}
)
PROVENANCE_LINE = re.compile(r"^\s*(%\s*)?Provenance:")
IDENTICAL = "tables identical to the committed ones"
NOT_COMPARED = "figure data not compared"


def _json_lines(value: Any, key: str = "") -> list[str]:
    """One ``dotted.key = value`` line per leaf (lists of records by index), volatile keys left out."""
    if isinstance(value, dict):
        return [line for k in sorted(value) if k not in VOLATILE_KEYS
                for line in _json_lines(value[k], f"{key}.{k}" if key else k)]
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [line for i, v in enumerate(value) for line in _json_lines(v, f"{key}[{i}]")]
    return [f"{key} = {json.dumps(value, ensure_ascii=False)}"]


def comparable_lines(path: Path) -> list[str]:
    """The lines of a table or sidecar that must be equal between two runs: a JSON file as one line per leaf
    without its volatile keys, any other text without its provenance line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return _json_lines(json.loads(text))
    return [line for line in text.splitlines() if not PROVENANCE_LINE.match(line)]


def first_difference(regenerated: Path, committed: Path) -> dict[str, Any] | None:
    """None when the two files agree (``comparable_lines``); else the file, the first differing line (1-based,
    in the comparable lines) and that line in each version (None past the end of a file)."""
    if not committed.exists():
        return {"file": str(committed), "line": None, "committed": None, "regenerated": "(new file)"}
    new, old = comparable_lines(regenerated), comparable_lines(committed)
    if new == old:
        return None
    line = next((i for i, (a, b) in enumerate(zip(new, old)) if a != b), min(len(new), len(old)))
    pick = lambda lines: lines[line] if line < len(lines) else None  # noqa: E731
    return {"file": str(committed), "line": line + 1, "committed": pick(old), "regenerated": pick(new)}


def compare_tables(tables: list[Path], dest: Path) -> list[dict[str, Any]]:
    """The differences of every regenerated table file from its namesake in ``dest``."""
    diffs = (first_difference(path, dest / path.name) for path in tables)
    return [d for d in diffs if d is not None]


def compare_figures(figures: list[Path], dest: Path) -> dict[str, Any]:
    """Per figure (by stem): "identical", the difference of its data sidecar (``<stem>.png.data.json``), or
    NOT_COMPARED when the report wrote none."""
    result: dict[str, Any] = {}
    for path in figures:
        if path.suffix != ".png":  # one verdict per figure, from its PNG's data sidecar
            continue
        data = sidecar_path(path, "data")
        if data.exists():
            diff = first_difference(data, dest / data.name)
            result[path.stem] = "identical" if diff is None else diff
        else:
            result[path.stem] = NOT_COMPARED
    return result


def _copy_changed(paths: list[Path], dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in paths:
        target = dest / path.name
        if not target.exists() or target.read_bytes() != path.read_bytes():
            shutil.copyfile(path, target)
            copied.append(str(target))
    return copied


def _with_data_sidecars(figures: list[Path]) -> list[Path]:
    sidecars = {sidecar_path(p, "data") for p in figures if not p.name.endswith(".json")}
    return sorted(set(figures) | {s for s in sidecars if s.exists()})


def summary(record: dict[str, Any]) -> str:
    """The lines publish prints: the tables' verdict with each difference, then each figure's."""
    lines = [IDENTICAL] if not record["table_differences"] else ["tables differ from the committed ones:"]
    for d in record["table_differences"]:
        lines.append(
            f"  {d['file']}:{d['line']}: committed {d['committed']!r}, regenerated {d['regenerated']!r}"
        )
    for name, verdict in record["figures"].items():
        text = verdict if isinstance(verdict, str) else f"data differ at {verdict['file']}:{verdict['line']}"
        lines.append(f"figure {name}: {text}")
    return "\n".join(lines)


def publish(tables: list[Path], figures: list[Path], tables_dest: Path, figures_dest: Path) -> dict[str, Any]:
    """Compare, then copy; returns the record written to published.json."""
    figures = _with_data_sidecars(figures)
    record = {
        "tables_identical": None,
        "table_differences": compare_tables(tables, tables_dest),
        "figures": compare_figures(figures, figures_dest),
    }
    record["tables_identical"] = not record["table_differences"]
    record["copied"] = _copy_changed(tables, tables_dest) + _copy_changed(figures, figures_dest)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", type=Path, required=True, help="regenerated table files")
    parser.add_argument("--figures", nargs="*", type=Path, default=[], help="regenerated figure files")
    parser.add_argument("--tables-dest", type=Path, required=True, help="e.g. paper_tables/tiny")
    parser.add_argument("--figures-dest", type=Path, required=True, help="e.g. figures/tiny")
    parser.add_argument("--out", type=Path, required=True, help="e.g. results/tiny/published.json")
    args = parser.parse_args(argv)
    record = publish(args.tables, args.figures, args.tables_dest, args.figures_dest)
    print(summary(record))
    write_json(args.out, record)


if __name__ == "__main__":
    main()
