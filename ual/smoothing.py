"""Uncertainty -> per-sample label-smoothing value epsilon (docs/method.md, "Mapping").

UAL: eps_i = eps_min + (eps_max - eps_min) * u_i, with u_i = (score_i - 1) / 9 in [0, 1] the elicited
uncertainty of training sample i. Controls that show whether the per-sample assignment matters:
``constant`` (every sample gets the mean UAL eps of that training set, i.e. ordinary label smoothing),
``shuffled`` (UAL's eps values permuted across samples: same distribution, assignment destroyed; drawn
anew for every training seed, so that the seeds of ``ual_shuffled`` average over permutations as well as
over training noise), ``per_dataset`` (every sample gets the mean UAL eps of its own dataset: the per-task
level kept, the per-sample value within a dataset removed; method ``ual_dataset``) and ``zero`` (plain SFT).
Which mapping a training method uses, and whether it depends on the training seed, is its row in
``ual.methods.METHODS`` (``mapping``, ``seeded``).

Inputs: the experiment YAML (``data`` and ``epsilon`` sections; ``elicit.on_missing``), the scores JSONL
of ``python -m ual.elicit`` (one record per sample, keyed by ``id``; read and validated by
``ual.elicit.read_scores``), a scenario, a variant (``ual.variants``: its method, and its eps_max for a sweep
point) and, for a seeded method (``ual_shuffled``), the training seed the file is for.
Outputs: ``epsilon.jsonl``, one line per training sample in training-set order,
``{"id", "dataset", "uncertainty", "epsilon"}``, and its sidecar ``epsilon.jsonl.meta.json``
(``ual.provenance.sidecar_path``: ``identity``, mapping, eps_min, eps_max, per-dataset summary statistics of
uncertainty and epsilon, provenance). This module owns the format: ``write_epsilon_file`` writes it,
``read_epsilon_file`` (used by ``ual.train``) reads and validates it (``EpsilonLine``: duplicate ids,
booleans, non-finite and out-of-range values are errors naming file and line).

Command::

    python -m ual.smoothing --experiment experiments/tiny.yaml --scores results/tiny/elicit/scores.jsonl \\
        --scenario mixed --variant ual_epsmax0.3 --out results/tiny/epsilon/mixed/ual_epsmax0.3.jsonl
    python -m ual.smoothing ... --variant ual_shuffled --seed 1 \\
        --out results/tiny/epsilon/mixed/ual_shuffled.seed1.jsonl

Missing scores (``missing: true``) fail the run unless ``elicit.on_missing: median``, which gives them the
median uncertainty of the scored samples of the same dataset in the training set (a missing GSM8K sample of
``mixed`` gets the GSM8K median, not one pulled up by open-ended samples); counted in the sidecar as
``n_imputed``.

Extension point: a function ``(uncertainty, eps_min, eps_max, seed) -> epsilon`` in ``EPSILON_MAPPINGS``
(named by a method's row). A mapping that applies another one within each dataset of the training set is one
line in ``PER_DATASET_MAPPINGS``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ual.identity import Identity
from ual.provenance import sidecar_path, write_text_atomic
from ual.scenarios import SCENARIOS
from ual.variants import Variant

__all__ = [
    "EPSILON_MAPPINGS",
    "MAPPING_VERSION",
    "PER_DATASET_MAPPINGS",
    "EpsilonFileError",
    "EpsilonLine",
    "map_epsilon",
    "variant_epsilon",
    "read_epsilon_file",
    "score_to_epsilon",
    "summarize",
    "write_epsilon_file",
]

logger = logging.getLogger(__name__)

MAPPING_VERSION = "v2"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def score_to_epsilon(uncertainty: float, eps_min: float, eps_max: float) -> float:
    """UAL's linear map of one uncertainty u in [0, 1] to eps in [eps_min, eps_max].

    >>> score_to_epsilon(0.5, 0.0, 0.2)
    0.1
    """
    if not 0.0 <= uncertainty <= 1.0:
        raise ValueError(f"uncertainty {uncertainty} outside [0, 1]")
    return eps_min + (eps_max - eps_min) * uncertainty


def _linear(uncertainty: np.ndarray, eps_min: float, eps_max: float, seed: int) -> np.ndarray:
    return np.array([score_to_epsilon(float(u), eps_min, eps_max) for u in uncertainty])


def _constant(uncertainty: np.ndarray, eps_min: float, eps_max: float, seed: int) -> np.ndarray:
    linear = _linear(uncertainty, eps_min, eps_max, seed)
    return np.full(len(linear), float(linear.mean()) if len(linear) else eps_min)


def _shuffled(uncertainty: np.ndarray, eps_min: float, eps_max: float, seed: int) -> np.ndarray:
    linear = _linear(uncertainty, eps_min, eps_max, seed)
    return linear[np.random.default_rng(seed).permutation(len(linear))]


def _zero(uncertainty: np.ndarray, eps_min: float, eps_max: float, seed: int) -> np.ndarray:
    return np.zeros(len(uncertainty))


EpsilonMapping = Callable[[np.ndarray, float, float, int], np.ndarray]
EPSILON_MAPPINGS: dict[str, EpsilonMapping] = {
    "linear": _linear,
    "constant": _constant,
    "shuffled": _shuffled,
    "zero": _zero,
}
# mapping -> the mapping of EPSILON_MAPPINGS applied to each dataset's samples on their own
PER_DATASET_MAPPINGS: dict[str, str] = {"per_dataset": "constant"}


def _per_dataset(
    values: np.ndarray, datasets: Sequence[str] | None, inner: str, eps_min: float, eps_max: float, seed: int
) -> np.ndarray:
    """``inner`` applied to the samples of each dataset separately (order preserved)."""
    if datasets is None or len(datasets) != len(values):
        got = "none" if datasets is None else f"{len(datasets)}"
        raise ValueError(f"a per-dataset mapping needs the dataset of every sample ({len(values)}), got {got}")
    labels = np.asarray(datasets, dtype=object)
    epsilon = np.zeros(len(values))
    for dataset in dict.fromkeys(datasets):
        members = np.flatnonzero(labels == dataset)
        epsilon[members] = EPSILON_MAPPINGS[inner](values[members], eps_min, eps_max, seed)
    return epsilon


def map_epsilon(
    uncertainty: Sequence[float],
    mapping: str,
    eps_min: float,
    eps_max: float,
    seed: int,
    datasets: Sequence[str] | None = None,
) -> list[float]:
    """Per-sample eps for one training set (order preserved) with a registered mapping.

    ``datasets`` (the dataset of each sample) is needed by the mappings of ``PER_DATASET_MAPPINGS`` only.

    >>> map_epsilon([0.0, 0.5, 1.0], "linear", 0.0, 0.2, seed=0)
    [0.0, 0.1, 0.2]
    >>> map_epsilon([0.0, 0.5, 1.0], "constant", 0.0, 0.2, seed=0)
    [0.1, 0.1, 0.1]
    >>> map_epsilon([0.0, 0.5, 1.0], "per_dataset", 0.0, 0.2, seed=0, datasets=["a", "a", "b"])
    [0.05, 0.05, 0.2]
    """
    if mapping not in EPSILON_MAPPINGS and mapping not in PER_DATASET_MAPPINGS:
        known = sorted({*EPSILON_MAPPINGS, *PER_DATASET_MAPPINGS})
        raise ValueError(f"unknown epsilon mapping '{mapping}'; registered: {known}")
    if not 0.0 <= eps_min <= eps_max < 1.0:
        raise ValueError(f"need 0 <= eps_min <= eps_max < 1, got eps_min={eps_min}, eps_max={eps_max}")
    values = np.asarray(uncertainty, dtype=float)
    if mapping in PER_DATASET_MAPPINGS:
        epsilon = _per_dataset(values, datasets, PER_DATASET_MAPPINGS[mapping], eps_min, eps_max, seed)
    else:
        epsilon = EPSILON_MAPPINGS[mapping](values, eps_min, eps_max, seed)
    return [round(float(e), 12) for e in epsilon]


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, sample sd (ddof=1), min, max and the quantiles q05..q95 of ``values``."""
    array = np.asarray(values, dtype=float)
    if len(array) == 0:
        return {"n": 0}
    stats: dict[str, float | int | None] = {
        "n": len(array),
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if len(array) > 1 else None,
        "min": float(array.min()),
        "max": float(array.max()),
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = float(np.quantile(array, q))
    return stats


def epsilon_records(
    records: list[dict],
    scores: dict[str, dict],
    mapping: str,
    eps_min: float,
    eps_max: float,
    seed: int,
    on_missing: str,
) -> tuple[list[dict], int]:
    """Epsilon-file lines for a training set, and the number of imputed (missing) scores."""
    absent = [r["id"] for r in records if r["id"] not in scores]
    if absent:
        raise ValueError(
            f"{len(absent)} training samples have no score (first ids: {absent[:5]}); "
            "rerun python -m ual.elicit for this experiment"
        )
    missing = [r["id"] for r in records if scores[r["id"]]["missing"]]
    if missing and on_missing != "median":
        raise ValueError(
            f"{len(missing)} training samples have a missing score (first ids: {missing[:5]}) "
            "and elicit.on_missing is 'fail'"
        )
    medians = _dataset_medians(records, scores) if missing else {}
    uncertainty = [
        medians[r["dataset"]] if scores[r["id"]]["missing"] else float(scores[r["id"]]["uncertainty"])
        for r in records
    ]
    epsilon = map_epsilon(uncertainty, mapping, eps_min, eps_max, seed, [r["dataset"] for r in records])
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
    (mapping, bounds, ``n_imputed``, summaries); ``seed`` is required exactly by a seeded method."""
    method = variant.row
    if method.seeded and seed is None:
        raise ValueError(f"method {method.name} permutes with the training seed: pass --seed")
    seed = seed if method.seeded else None
    eps_min = experiment.epsilon.eps_min
    eps_max = experiment.epsilon.eps_max if variant.eps_max is None else variant.eps_max
    lines, n_imputed = epsilon_records(records, scores, method.mapping, eps_min, eps_max,
                                       0 if seed is None else seed, experiment.elicit.on_missing)
    meta = {"mapping": method.mapping, "mapping_version": MAPPING_VERSION, "method": method.name,
            "eps_min": eps_min, "eps_max": eps_max, "n": len(lines), "n_imputed": n_imputed,
            "summary": dataset_summaries(lines)}
    return lines, meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Map elicited uncertainty to per-sample label smoothing.")
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True)
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
        scores = {row["id"]: row for row in read_scores(args.scores, scores_identity(experiment.elicit))}
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
