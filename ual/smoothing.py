"""Stage 1b: the epsilon file of each trained variant (``python -m ual.smoothing``), and its reader.

UAL's per-sample eps comes from the elicited uncertainty of the source ``epsilon.source`` (null:
``elicit.method``; ``Experiment.epsilon_source``) by the mapping ``epsilon.mapping``; each method row of
``ual.methods.METHODS`` then says what the method trains with, made from UAL's eps, so the controls are the
controls of whatever source and mapping UAL uses. The mappings themselves are pure functions in
``ual.epsilon`` (``map_epsilon``).

Inputs: the experiment YAML (``data`` and ``epsilon`` sections; ``elicit.on_missing``), the scores JSONL
of ``python -m ual.elicit`` for the source ``epsilon.source`` (one record per sample, keyed by ``id``; read
and validated by ``ual.elicit.read_scores``), a scenario, a variant (``ual.variants``: its method, and its
eps_max for a sweep point) and, for a seeded method (``ual_shuffled``), the training seed the file is for.
Outputs: ``epsilon.jsonl``, one line per training sample in training-set order,
``{"id", "dataset", "uncertainty", "epsilon"}``, and its sidecar ``epsilon.jsonl.meta.json``
(``ual.provenance.sidecar_path``: ``identity``, method mapping, ``epsilon_mapping``, ``source``, eps_min,
eps_max, per-dataset summary statistics of uncertainty and epsilon, provenance). This module owns the
format: ``write_epsilon_file`` writes it, ``read_epsilon_file`` (used by ``ual.train``) reads and validates
it (``EpsilonLine``: duplicate ids, booleans, non-finite and out-of-range values are errors naming file and
line).

Command::

    python -m ual.smoothing --experiment experiments/tiny.yaml --scores results/tiny/elicit/scores.entropy.jsonl \\
        --scenario mixed --variant ual_epsmax0.3 --out results/tiny/epsilon/mixed/ual_epsmax0.3.jsonl
    python -m ual.smoothing ... --variant ual_shuffled --seed 1 \\
        --out results/tiny/epsilon/mixed/ual_shuffled.seed1.jsonl

Missing scores (``missing: true``) fail the run with the count unless ``elicit.on_missing: median``, which
gives them the median uncertainty of the scored samples of the same dataset in the training set (a missing
GSM8K sample of ``mixed`` gets the GSM8K median, not one pulled up by open-ended samples); counted in the
sidecar as ``n_imputed``. A sample absent from the scores file is an error naming ``epsilon.source`` and the
count; ``rank`` on fewer than two samples is an error.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ual.epsilon import MAPPING_VERSION, map_epsilon
from ual.identity import Identity
from ual.provenance import sidecar_path, write_text_atomic
from ual.scenarios import SCENARIOS
from ual.stats import describe as summarize  # n, mean, sd, min, max, q05..q95
from ual.variants import Variant

__all__ = [
    "EpsilonFileError",
    "EpsilonLine",
    "variant_epsilon",
    "read_epsilon_file",
    "summarize",
    "write_epsilon_file",
]

logger = logging.getLogger(__name__)

def epsilon_records(
    records: list[dict],
    scores: dict[str, dict],
    method_mapping: str,
    eps_min: float,
    eps_max: float,
    seed: int,
    on_missing: str,
    mapping: str = "linear",
    source: str = "verbalized",
) -> tuple[list[dict], int]:
    """Epsilon-file lines for a training set, and the number of imputed (missing) scores.

    ``scores`` are the records of uncertainty source ``source`` (``epsilon.source``), keyed by sample id;
    ``mapping`` is ``epsilon.mapping`` and ``method_mapping`` the method row's (``map_epsilon``).
    """
    absent = [r["id"] for r in records if r["id"] not in scores]
    if absent:
        raise ValueError(
            f"epsilon.source '{source}': {len(absent)} of {len(records)} training samples have no score "
            f"(first ids: {absent[:5]}); rerun python -m ual.elicit for this experiment and source"
        )
    missing = [r["id"] for r in records if scores[r["id"]]["missing"]]
    if missing and on_missing != "median":
        raise ValueError(
            f"epsilon.source '{source}': {len(missing)} of {len(records)} training samples have a missing "
            f"score (first ids: {missing[:5]}) and elicit.on_missing is 'fail'"
        )
    medians = _dataset_medians(records, scores) if missing else {}
    uncertainty = [
        medians[r["dataset"]] if scores[r["id"]]["missing"] else float(scores[r["id"]]["uncertainty"])
        for r in records
    ]
    datasets = [r["dataset"] for r in records]
    epsilon = map_epsilon(uncertainty, mapping, eps_min, eps_max, seed, datasets, method_mapping)
    lines = [
        {"id": r["id"], "dataset": r["dataset"], "uncertainty": u, "epsilon": e}
        for r, u, e in zip(records, uncertainty, epsilon, strict=True)
    ]
    return lines, len(missing)


def _dataset_medians(records: list[dict], scores: dict[str, dict]) -> dict[str, float]:
    """Median uncertainty of the scored samples of each dataset of the training set (``on_missing: median``
    imputes within the sample's own dataset: a math sample of ``mixed`` gets the math median)."""
    scored: dict[str, list[float]] = {}
    for record in records:
        values = scored.setdefault(record["dataset"], [])
        if not scores[record["id"]]["missing"]:
            values.append(float(scores[record["id"]]["uncertainty"]))
    medians = {dataset: float(np.median(values)) for dataset, values in scored.items() if values}
    unscored = sorted(set(scored) - set(medians))
    if unscored:
        raise ValueError(
            f"every training sample of dataset {', '.join(unscored)} has a missing score; "
            "nothing to take a median of"
        )
    return medians


def dataset_summaries(lines: list[dict]) -> dict[str, Any]:
    """Per-dataset (and ``all``) summary statistics of uncertainty and epsilon."""
    groups: dict[str, list[dict]] = {"all": lines}
    for line in lines:
        groups.setdefault(line["dataset"], []).append(line)
    return {
        name: {key: summarize([x[key] for x in group]) for key in ("uncertainty", "epsilon")}
        for name, group in groups.items()
    }


# ---- the epsilon file: this module writes it and ual.train reads it, both through the functions below ----


class EpsilonFileError(ValueError):
    """A missing or malformed epsilon file; the message names the file and the line (or the id)."""


class EpsilonLine(BaseModel):
    """One line of an epsilon file: a training sample's uncertainty u in [0, 1] and its eps in [0, 1)."""

    # strict: true is not 1.0 and "0.1" is not a number; extra="forbid": one schema, no stray fields.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str = Field(min_length=1)
    dataset: str
    uncertainty: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    epsilon: float = Field(ge=0.0, lt=1.0, allow_inf_nan=False)


def _line_error(path: Path, number: int, row: Any, error: ValidationError) -> EpsilonFileError:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "missing":
            problems.append(f"missing field '{key}'")
        elif item["type"] == "extra_forbidden":
            problems.append(f"unknown field '{key}'")
        else:
            problems.append(f"{key} {item['input']!r}: {item['msg']}")
    sample = f"id {row['id']}: " if isinstance(row, dict) and isinstance(row.get("id"), str) else ""
    return EpsilonFileError(f"{path}:{number}: {sample}{'; '.join(problems)}")


def read_epsilon_file(path: str | Path) -> tuple[list[EpsilonLine], dict[str, Any] | None]:
    """The lines of an epsilon file (file order) and its sidecar (None when absent), validated.

    Raises:
        EpsilonFileError: the file is missing; a line is not a JSON object of ``EpsilonLine`` (missing or
            unknown field, a boolean or string for a number, non-finite, eps outside [0, 1), u outside
            [0, 1]) or repeats an id; the sidecar is not a JSON object. Each names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise EpsilonFileError(f"epsilon file {path} not found (it is written by python -m ual.smoothing)")
    lines: list[EpsilonLine] = []
    first_line: dict[str, int] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
            line = EpsilonLine.model_validate(row)
        except json.JSONDecodeError as exc:
            raise EpsilonFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except ValidationError as exc:
            raise _line_error(path, number, row, exc) from None
        if line.id in first_line:
            first = first_line[line.id]
            raise EpsilonFileError(f"{path}:{number}: duplicate id {line.id} (first on line {first})")
        first_line[line.id] = number
        lines.append(line)
    meta_path, meta = sidecar_path(path), None
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EpsilonFileError(f"{meta_path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(meta, dict):
            raise EpsilonFileError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    return lines, meta


def write_epsilon_file(path: str | Path, lines: Sequence[dict], meta: dict[str, Any]) -> None:
    """Write an epsilon file and its sidecar atomically; every line is checked as the reader checks it."""
    path = Path(path)
    checked = [EpsilonLine.model_validate(line) for line in lines]
    write_text_atomic(path, "".join(line.model_dump_json() + "\n" for line in checked))
    write_text_atomic(sidecar_path(path), json.dumps(meta, indent=2) + "\n")


def variant_epsilon(
    experiment: Any, records: list[dict], scores: dict[str, dict], variant: Variant, seed: int | None
) -> tuple[list[dict], dict[str, Any]]:
    """The epsilon-file lines of ``variant`` for a training set, and the sidecar's description of them
    (source, mappings, bounds, ``n_imputed``, summaries); ``seed`` is required exactly by a seeded method.
    ``scores`` are the records of the experiment's ``epsilon_source``."""
    method = variant.row
    if method.seeded and seed is None:
        raise ValueError(f"method {method.name} permutes with the training seed: pass --seed")
    seed = seed if method.seeded else None
    eps = experiment.epsilon
    eps_max = eps.eps_max if variant.eps_max is None else variant.eps_max
    source = experiment.epsilon_source
    lines, n_imputed = epsilon_records(records, scores, method.mapping, eps.eps_min, eps_max,
                                       0 if seed is None else seed, experiment.elicit.on_missing,
                                       mapping=eps.mapping, source=source)
    meta = {"mapping": method.mapping, "epsilon_mapping": eps.mapping, "source": source,
            "mapping_version": MAPPING_VERSION, "method": method.name, "eps_min": eps.eps_min,
            "eps_max": eps_max, "n": len(lines), "n_imputed": n_imputed, "summary": dataset_summaries(lines)}
    return lines, meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Map elicited uncertainty to per-sample label smoothing.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True,
                        help="scores file of the uncertainty source epsilon.source (null: elicit.method)")
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--variant", required=True, help="trained variant (ual_epsmax0.3: UAL, eps_max 0.3)")
    parser.add_argument(
        "--seed", type=int, default=None, help="training seed the file is for (required by ual_shuffled)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ual.experiment import ConfigError, load_experiment
    from ual.data import DataError, build_scenario
    from ual.elicit import read_scores, scores_identity
    from ual.provenance import run_metadata

    try:
        variant = Variant.parse(args.variant)
        experiment = load_experiment(args.experiment)
        records = build_scenario(experiment.data, args.scenario)
        elicit = experiment.elicit_for(experiment.epsilon_source)
        scores = {row["id"]: row for row in read_scores(args.scores, scores_identity(elicit))}
        lines, meta = variant_epsilon(experiment, records, scores, variant, args.seed)
    except (ConfigError, DataError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    seed = args.seed if variant.seeded else None
    identity = Identity(experiment=experiment.name, scenario=args.scenario, variant=variant.name, seed=seed)
    meta = {"identity": identity.as_record(), **meta, "scores_file": str(args.scores),
            "provenance": run_metadata(stage="smoothing")}
    write_epsilon_file(args.out, lines, meta)
    logger.info(
        "wrote %d epsilon values (%s, mean %.4f) to %s",
        len(lines),
        meta["mapping"],
        meta["summary"]["all"]["epsilon"].get("mean", 0.0),
        args.out,
    )


if __name__ == "__main__":
    main()
