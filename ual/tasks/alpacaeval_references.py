"""AlpacaEval reference sets: named, selectable baselines (``evaluate.reference_outputs``), checked, traced.

A win rate is "the model against a reference output per instruction", so the reference set is part of what a
number means. Named sets are files of the data mirror (tatsu-lab/alpaca_eval at commit cd543a1), registered
with their files in ``ual.data.REFERENCE_FILES`` (whose reader, ``ual.data.load_alpaca_eval_references``, is
the one that reads them) and described here (``REFERENCE_SETS``):
- ``text_davinci_003``: ``results/text_davinci_003/model_outputs.json``, the GitHub repository's
  text-davinci-003 outputs;
- ``text_davinci_003_gpt4_annotations``: the ``output_1`` column of the published AlpacaEval 1 annotations
  ``results/gpt4/alpaca_eval_gpt4/annotations.json``: also text-davinci-003, but other generations (they
  differ from the set above on 785 of 805 instructions). 51 of the 52 readable ``alpaca_eval_gpt4``
  annotation files of the AlpacaEval 1 leaderboard at that commit share exactly this ``output_1``; one
  (Mistral-7B+RAHF-DUAL+LoRA) used the set above (README, "AlpacaEval references");
- ``gpt4_1106_preview``: ``results/gpt4_1106_preview/model_outputs.json``, the AlpacaEval 2 baseline.
A path ending in ``.json`` is a model_outputs file of your own ({instruction, output[, generator]} rows).

Every set is checked (one output per AlpacaEval instruction, no duplicates, string fields; errors name the
file and the row) and described for the provenance by ``reference_provenance``: name, file, column, number of
rows and a sha256 of its (instruction, output) pairs, so two runs that used different sets never look alike.

Inputs: the set name or path, the data mirror (``data.mirror`` / env ``UAL_DATA_MIRROR``), the 805
instructions. Outputs: reference rows {instruction, output, generator} and where they came from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ual.judge_errors import AlpacaEvalError
from ual.provenance import read_json_list

__all__ = ["REFERENCE_SETS", "load_references", "reference_provenance"]

# What each named set is (its file: ual.data.REFERENCE_FILES).
REFERENCE_SETS: dict[str, str] = {
    "text_davinci_003": "AlpacaEval 1 baseline as alpaca_eval's GitHub results folder ships it",
    "text_davinci_003_gpt4_annotations": "the text-davinci-003 outputs that alpaca_eval's published "
    "AlpacaEval 1 GPT-4 annotations judged against (shared by 51 of the 52 readable leaderboard annotation "
    "files)",
    "gpt4_1106_preview": "AlpacaEval 2 baseline (GPT-4 Turbo)",
}


def load_references(reference: str, mirror: str | None, instructions: list[str]) -> tuple[list[dict], str]:
    """Reference outputs, checked: one per AlpacaEval instruction (``instructions``, the 805 in order).

    ``reference`` is a name of ``REFERENCE_SETS`` or a model_outputs JSON path. Returns (rows, origin).
    """
    from ual.data import REFERENCE_FILES, load_alpaca_eval_references, resolve_mirror

    if reference.endswith(".json"):
        origin, rows = reference, read_json_list(Path(reference), "reference outputs", AlpacaEvalError)
    elif reference in REFERENCE_FILES:
        origin = str(resolve_mirror(mirror) / REFERENCE_FILES[reference])
        rows = load_alpaca_eval_references(reference, mirror)
    else:
        raise AlpacaEvalError(
            f"evaluate.reference_outputs '{reference}': not a reference set ({', '.join(REFERENCE_FILES)}) "
            "nor a model_outputs .json path"
        )
    if len(rows) != len(instructions):
        raise AlpacaEvalError(
            f"{origin}: {len(rows)} reference outputs, expected {len(instructions)} "
            "(one per AlpacaEval instruction)"
        )
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) for k in ("instruction", "output")
        ):
            raise AlpacaEvalError(f"{origin}: row {number}: needs string 'instruction' and 'output'")
    found = {row["instruction"] for row in rows}
    if len(found) != len(rows) or found != set(instructions):
        raise AlpacaEvalError(
            f"{origin}: reference instructions are not the AlpacaEval set "
            f"({len(rows) - len(found)} duplicates, {len(set(instructions) - found)} missing)"
        )
    return rows, origin


def reference_provenance(reference: str, origin: str, rows: list[dict]) -> dict[str, Any]:
    """What the metrics record about the reference set: a sha256 over its (instruction, output) pairs,
    sorted, identifies the content whatever file, copy or row order it came from."""
    pairs = sorted((row["instruction"], row["output"]) for row in rows)
    digest = hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()
    from ual.data.registry import REFERENCE_COLUMNS

    return {
        "name": reference,
        "file": origin,
        "column": REFERENCE_COLUMNS.get(reference, "output"),
        "about": REFERENCE_SETS.get(reference, "a model_outputs file given by path"),
        "n": len(rows),
        "sha256": digest,
    }
