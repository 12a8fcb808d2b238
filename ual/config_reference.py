"""The reference of every experiment key, generated from the schema (``ual.config.Experiment``'s pydantic Fields).

``experiments/README.md`` is hand-written notes above the line ``MARKER`` and this module's output below it: one
table per section, each key with its type (constraints included), default ("required" where a file must state
it) and the Field's description. A test fails when the file and the schema differ.

    python -m ual.config_reference --write experiments/README.md   # regenerate the part below the marker
    python -m ual.config_reference                                 # print it
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

MARKER = "<!-- generated from the schema by `python -m ual.config_reference --write experiments/README.md`; do not edit below -->"
CONSTRAINTS = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}", "min_length": "length >= {}",
               "pattern": "matching `{}`"}


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: ``int``, ``a | b`` for literals, ``list of ...``, ``map ... -> ...``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" \\| null" if type(None) in args else "")
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map {type_name(args[0])} -> {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: FieldInfo) -> list[str]:
    found = []
    for item in field.metadata:
        for name, text in CONSTRAINTS.items():
            value = getattr(item, name, None)
            if value is not None:
                found.append(text.format(value))
    return found


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value)}`"


def _section_class(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


Row = tuple[str, str, str, str]  # dotted key, type, default, description


def sections(model: type[BaseModel], prefix: str = "", doc: str | None = None) -> list[tuple[str, str, list[Row]]]:
    """(dotted section name, what it is, its rows) for ``model`` and every section below it, each table followed
    by those of its sections. What it is: ``doc`` (the description of the field holding the section), else the
    first line of the section class's docstring."""
    rows: list[Row] = []
    nested = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        kind = ", ".join([type_name(field.annotation), *_constraints(field)])
        rows.append((key, kind, default_text(field), (field.description or "").replace("|", "\\|")))
        section = _section_class(field.annotation)
        if section is not None:
            nested.extend(sections(section, f"{key}.", field.description))
    lines = (model.__doc__ or "").strip().splitlines()
    return [(prefix.rstrip("."), doc or (lines[0] if lines else ""), rows), *nested]


def render(model: type[BaseModel] | None = None) -> str:
    """The generated reference (Markdown), ending with a newline."""
    if model is None:
        from ual.config import Experiment

        model = Experiment
    out = ["## Every key", "",
           "Generated from the pydantic Fields of `ual.config`. \"required\": the file must state the key.", ""]
    for group, doc, items in sections(model):
        out += [f"### {f'`{group}`' if group else 'top level'}", ""]
        if doc:
            out += [doc, ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        out += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in items]
        out.append("")
    return "\n".join(out)


def with_reference(text: str, reference: str) -> str:
    """``text`` (a README) with everything below ``MARKER`` replaced by ``reference`` (the marker appended when
    missing)."""
    head = text.split(MARKER, 1)[0].rstrip("\n")
    return f"{head}\n\n{MARKER}\n\n{reference}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="the README whose part below the marker is regenerated")
    args = parser.parse_args(argv)
    reference = render()
    if args.write is None:
        print(reference, end="")
    else:
        args.write.write_text(with_reference(args.write.read_text(encoding="utf-8"), reference), encoding="utf-8")


if __name__ == "__main__":
    main()
