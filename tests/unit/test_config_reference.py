"""experiments/README.md lists every key of the schema, with its type, default and description.

Run: python -m pytest tests/unit/test_config_reference.py
"""

from __future__ import annotations

from pathlib import Path

from ual.config import Experiment
from ual.experiment import experiment_json_schema
from ual.config_reference import MARKER, render, sections, type_name, with_reference

REPO = Path(__file__).resolve().parents[2]
README = REPO / "experiments" / "README.md"


def test_experiments_readme_is_generated_from_the_schema():
    text = README.read_text(encoding="utf-8")
    assert MARKER in text
    assert text == with_reference(text, render()), (
        "experiments/README.md differs from the schema: python -m ual.config_reference --write experiments/README.md"
    )


def _schema_keys(schema: dict, node: dict, prefix: str = "") -> set[str]:
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    keys = set()
    for name, child in node.get("properties", {}).items():
        keys.add(prefix + name)
        keys |= _schema_keys(schema, child, f"{prefix}{name}.")
    return keys


def test_every_property_of_the_exported_schema_has_a_row_with_a_description():
    rows = {row[0]: row for _, _, table in sections(Experiment) for row in table}
    schema = experiment_json_schema()
    assert _schema_keys(schema, schema) <= set(rows), "keys of the JSON Schema missing from the reference"
    assert [key for key, (_, _, _, text) in rows.items() if not text] == [], "Fields without description="


def test_type_names_read_as_yaml():
    from typing import Annotated, Literal

    assert type_name(int | None) == "int \\| null"
    assert type_name(Annotated[list[Literal["a", "b"]], "x"]) == "list of `a` \\| `b`"
    assert type_name(dict[str, int]) == "map str -> int"


def test_the_hand_written_part_above_the_marker_is_kept():
    text = with_reference("# notes\n\nkept\n", "## Every key\n")
    assert text == f"# notes\n\nkept\n\n{MARKER}\n\n## Every key\n"
    assert with_reference(text, "## new\n") == f"# notes\n\nkept\n\n{MARKER}\n\n## new\n"
