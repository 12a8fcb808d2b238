"""Score model outputs on the paper's benchmarks: GSM8K, MATH (MetaMath protocol), AlpacaEval (alpaca_eval).

Inputs: ``--task`` = a task of ``ual.tasks.TASKS`` (which owns items, prompt, stop strings and scoring);
``--outputs`` = the model outputs of ``python -m ual.generate`` (alpaca_eval model_outputs format: a
JSON list of {instruction, output, generator, dataset, id}) for the items the experiment selects
(``evaluate.sizes`` drawn by ``data.seed``), and the gold records / reference outputs from ``ual.data``.
Outputs: ``--out metrics.json`` (metric values, ``identity`` = {experiment, scenario, variant, seed} of the
command line, model, judge, task version, provenance) and per-item records beside it (GSM8K, MATH:
``<out stem>.items.jsonl``; AlpacaEval: ``<out stem>.annotations.json``, the judge cache
``annotations_cache/`` and ``annotator_config/``). ``--scenario``, ``--variant`` and ``--seed`` are recorded
only (null when not given).

    python -m ual.evaluate --experiment experiments/tiny.yaml --task gsm8k \\
        --outputs results/tiny/seed0/generate/mixed/ual/gsm8k.json --scenario mixed --variant ual --seed 0 \\
        --out results/tiny/seed0/evaluate/mixed/ual/gsm8k.json
    python -m ual.evaluate --experiment experiments/paper_llama2-7b.yaml --estimate   # the judge's bill

``--estimate`` (``ual.evaluate.estimate``) prints the AlpacaEval judge's requests, prompt and completion
tokens and cost for the whole experiment without calling anything.

This package is the CLI and the reader of model outputs files; the tasks it scores live in ``ual.tasks``
(extension point: ``ual.tasks.TASKS``), the AlpacaEval judges in ``ual.judges``, the lm-eval task that
checks our generation in ``ual/evaluate/lmeval_tasks``. Nothing in ``ual.tasks`` imports this package.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ual.config import Experiment
from ual.experiment import load_experiment
from ual.identity import IDENTITY_KEY, Identity, add_identity_arguments
from ual.provenance import read_json_list, sidecar_path, write_json
from ual.tasks import TASKS, get_task

logger = logging.getLogger(__name__)

__all__ = ["OutputsError", "evaluate_task", "main", "match_outputs", "read_model_outputs"]


class OutputsError(ValueError):
    """A model outputs file that cannot be scored (the message names the file and row)."""


def read_model_outputs(path: Path, match_key: str) -> list[dict]:
    """Load and check a model outputs file: a JSON list of objects with string ``instruction``, ``output``
    (and ``match_key``), no duplicate ``match_key``. Errors name the file and the 1-based row."""
    rows = read_json_list(path, "model outputs", OutputsError)
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise OutputsError(f"{path}: row {number}: expected an object, got {type(row).__name__}")
        for key in dict.fromkeys(("instruction", "output", match_key)):
            if not isinstance(row.get(key), str):
                raise OutputsError(f"{path}: row {number}: missing or non-string '{key}'")
        key = row[match_key]
        if key in seen:
            raise OutputsError(
                f"{path}: rows {seen[key]} and {number} have the same {match_key} {key[:80]!r}"
            )
        seen[key] = number
    return rows


def match_outputs(path: Path, rows: list[dict], records: list[dict], match_key: str) -> dict[str, str]:
    """Map record id -> output; the outputs must cover exactly the experiment's items."""
    by_key = {row[match_key]: row["output"] for row in rows}
    record_key = "id" if match_key == "id" else "instruction"
    wanted = {r[record_key] for r in records}
    missing, extra = wanted - by_key.keys(), by_key.keys() - wanted
    if missing or extra:
        raise OutputsError(
            f"{path}: outputs do not match the experiment's items: {len(missing)} missing, {len(extra)} not "
            f"selected (first: {min(missing or extra)[:80]!r}); regenerate with the same experiment"
        )
    return {r["id"]: by_key[r[record_key]] for r in records}


def evaluate_task(
    experiment: Experiment, task: str, outputs_path: Path, out: Path, identity: Identity | None = None
) -> dict[str, Any]:
    """Score one task's outputs and write ``out`` (metrics.json); returns the metrics dict. ``identity`` is
    recorded in it (default: the experiment only)."""
    from ual.provenance import run_metadata

    spec = get_task(task)
    records = spec.records(experiment)
    rows = read_model_outputs(outputs_path, spec.match_key)
    outputs = match_outputs(outputs_path, rows, records, spec.match_key)
    meta_path = sidecar_path(outputs_path)
    generation = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    metrics = spec.score(outputs, records, experiment, Path(out), Path(outputs_path))
    payload = {
        IDENTITY_KEY: (identity or Identity(experiment=experiment.name)).as_record(),
        "task": task,
        "task_version": spec.version,
        **metrics,
        "model": generation.get("model"),
        "generator": rows[0].get("generator") if rows else None,
        "outputs_file": str(outputs_path),
        "generation": {k: generation.get(k) for k in ("backend", "max_new_tokens", "batch_size", "prompt")},
        "provenance": run_metadata(
            stage="evaluate", evaluate_config=experiment.evaluate.model_dump(mode="json")
        ),
    }
    payload.setdefault("judge", None)
    write_json(out, payload)
    logger.info("%s: %s", task, {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score model outputs on GSM8K, MATH or AlpacaEval.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--task", choices=sorted(TASKS))
    parser.add_argument("--outputs", type=Path, help="model outputs of python -m ual.generate")
    parser.add_argument("--out", type=Path, help="metrics JSON to write")
    add_identity_arguments(parser)
    parser.add_argument(
        "--estimate", action="store_true",
        help="print the AlpacaEval judge's requests, tokens and cost for the experiment; calls nothing",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    experiment = load_experiment(args.experiment)
    if args.estimate:
        from ual.evaluate.estimate import estimate_judging

        try:
            outputs = None
            if args.outputs is not None:  # the bill of judging this one outputs file
                rows = read_model_outputs(args.outputs, "instruction")
                outputs = {r["instruction"]: r["output"] for r in rows}
            print(json.dumps(estimate_judging(experiment, outputs), indent=2))
        except (OutputsError, KeyError, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from None
        return
    missing = [f"--{name}" for name in ("task", "outputs", "out") if getattr(args, name) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (or --estimate)")
    identity = Identity(
        experiment=experiment.name, scenario=args.scenario, variant=args.variant, seed=args.seed
    )
    try:
        evaluate_task(experiment, args.task, args.outputs, args.out, identity)
    except (OutputsError, KeyError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
