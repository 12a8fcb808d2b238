"""Read the workflow's result files into tidy tables (pandas), with nothing computed but unit changes.

Inputs (paths are given explicitly by the workflow; nothing is globbed):
- evaluate metrics ``results/<exp>/seed<s>/evaluate/<scenario>/<variant>/<task>.json`` (ual.evaluate): a
  ``metric`` name whose value is under that key, ``task``, ``method`` (the variant), ``scenario``, ``seed``,
  and either ``standard_error`` (AlpacaEval) or ``ci95_low``/``ci95_high`` (accuracies), plus ``provenance``
  (AlpacaEval also ``position_bias`` and ``n_unparsed``, ``ual.tasks.alpacaeval``);
  GSM8K files also hold ``crosscheck`` (the same generations under other scorers, ``read_crosscheck``);
- elicited scores ``results/<exp>/elicit/scores.jsonl`` (ual.elicit);
- clustering ``results/<exp>/seed<s>/analysis/<scenario>/clustering.json`` (ual.analysis.clustering);
- training ``.../train/<scenario>/<variant>/train_metrics.json`` (ual.train; the variant folder is
  checked with ``ual.variants.Variant.parse``).
Outputs: pandas DataFrames; percentages are in 0..100.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ual.variants import Variant

__all__ = [
    "read_metrics",
    "read_crosscheck",
    "read_scores",
    "read_clustering",
    "read_train_logs",
    "provenance_summary",
]
REPORTED_SCORER = "ual"  # read_crosscheck's name for the accuracy the GSM8K task reports


def _load(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read result JSON ({exc})") from None


def _as_percent(value: float | None, metric: str) -> float | None:
    """Accuracies are stored as fractions, alpaca_eval win rates already in percent."""
    if value is None:
        return None
    return value if metric in {"win_rate", "length_controlled_winrate"} else 100.0 * value


def read_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (scenario, variant, seed, task): value and error in percent, judge, provenance."""
    rows = []
    for path in paths:
        data = _load(path)
        for key in ("task", "metric", "method", "scenario", "seed"):
            if data.get(key) is None:
                raise ValueError(f"{path}: metric file lacks '{key}'")
        metric = data["metric"]
        if metric not in data:
            raise ValueError(f"{path}: metric '{metric}' has no value in the file")
        if data.get("standard_error") is not None:
            error, error_kind = _as_percent(data["standard_error"], metric), "se"
        elif data.get("ci95_low") is not None:
            half = (data["ci95_high"] - data["ci95_low"]) / 2
            error, error_kind = _as_percent(half, metric), "ci95/2"
        else:
            error, error_kind = None, None
        provenance = data.get("provenance", {})
        rows.append(
            {
                "scenario": data["scenario"],
                "variant": data["method"],
                "seed": int(data["seed"]),
                "task": data["task"],
                "metric": metric,
                "value": _as_percent(data[metric], metric),
                "error": error,
                "error_kind": error_kind,
                "n": data.get("n"),
                "position_bias": data.get("position_bias"),  # AlpacaEval: % of preference to the 2nd shown
                "n_unparsed": data.get("n_unparsed"),  # AlpacaEval: pairs without a judge verdict
                "judge": data.get("judge"),
                "model": data.get("model"),
                "git_sha": provenance.get("git_sha"),
                "versions": json.dumps(provenance.get("versions", {}), sort_keys=True),
                "file": str(path),
            }
        )
    return pd.DataFrame(rows)


def read_crosscheck(paths: list[str | Path]) -> pd.DataFrame:
    """GSM8K accuracy by scorer, one row per (scenario, variant, seed, scorer): the reported one
    (``REPORTED_SCORER``) and each of the file's ``crosscheck`` (``ual.tasks.gsm8k``); the scorer is in the
    ``task`` column, so the table builders treat scorers as they treat tasks. Other tasks' files are
    skipped."""
    rows = []
    for path in paths:
        data = _load(path)
        if data.get("task") != "gsm8k":
            continue
        if not isinstance(data.get("crosscheck"), dict):
            raise ValueError(
                f"{path}: GSM8K metrics without 'crosscheck' (task_version {data.get('task_version')}); "
                "rescore them with the current code (snakemake -R score_task)"
            )
        for scorer, result in {REPORTED_SCORER: data, **data["crosscheck"]}.items():
            rows.append(
                {
                    "scenario": data["scenario"],
                    "variant": data["method"],
                    "seed": int(data["seed"]),
                    "task": scorer,
                    "value": 100.0 * result["accuracy"],
                    "error": 50.0 * (result["ci95_high"] - result["ci95_low"]),
                    "error_kind": "ci95/2",
                    "n": result.get("n"),
                }
            )
    columns = ["scenario", "variant", "seed", "task", "value", "error", "error_kind", "n"]
    return pd.DataFrame(rows, columns=columns)


def read_scores(path: str | Path) -> pd.DataFrame:
    """The elicited uncertainty of every training sample (one row per record, validated by
    ``ual.elicit.read_scores``)."""
    from ual.elicit import read_scores as read_score_records

    return pd.DataFrame(read_score_records(path))


def read_clustering(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (scenario, seed, model, layer, metric) with value and bootstrap interval."""
    rows = []
    for path in paths:
        data = _load(path)
        parts = Path(path).parts
        scenario = data.get("scenario") or parts[-2]
        seed = data.get("seed")
        if seed is None:
            seed = int(next(p for p in parts if p.startswith("seed")).removeprefix("seed"))
        for model, result in data["models"].items():
            for layer, layer_result in result["layers"].items():
                for metric, values in layer_result["metrics"].items():
                    rows.append(
                        {
                            "scenario": scenario,
                            "seed": int(seed),
                            "model": model,
                            "layer": layer,
                            "metric": metric,
                            "value": values["value"],
                            "ci95_low": values.get("ci_low"),
                            "ci95_high": values.get("ci_high"),
                            "n_states": result.get("n_states"),
                        }
                    )
    return pd.DataFrame(rows)


def read_train_logs(paths: list[str | Path]) -> pd.DataFrame:
    """Per-step training loss of every run: scenario, variant, seed, step, loss."""
    rows = []
    for path in paths:
        data = _load(path)
        parts = Path(path).parts
        variant, scenario = parts[-2], parts[-3]
        try:
            Variant.parse(variant)
        except ValueError as exc:
            raise ValueError(f"{path}: not a .../<scenario>/<variant>/train_metrics.json ({exc})") from None
        seed = int(next(p for p in parts if p.startswith("seed")).removeprefix("seed"))
        for entry in data.get("steps", []):
            if entry.get("loss") is not None:
                rows.append({"scenario": scenario, "variant": variant, "seed": seed,
                             "step": entry["step"], "loss": entry["loss"]})
    return pd.DataFrame(rows, columns=["scenario", "variant", "seed", "step", "loss"])


def provenance_summary(
    metrics: pd.DataFrame, experiment, extra: dict[str, Any] | None = None, data_sources: list | None = None
) -> dict[str, Any]:
    """What a reader needs to trace a table: model, judge, elicitor, seeds, versions, git SHA(s), and where each
    dataset came from (``data_sources``: the records of ``ual.inputs``, mirror file and sha256 or hub id and
    revision; "not recorded" when the report was not given them)."""
    versions = sorted(set(metrics["versions"])) if not metrics.empty else []
    return {
        "experiment": experiment.name,
        "model": f"{experiment.model.name} ({experiment.model.source})",
        "elicitor": f"{experiment.elicit.backend}:{experiment.elicit.model} prompt {experiment.elicit.prompt_version}",
        "judge": f"{experiment.evaluate.judge} vs {experiment.evaluate.reference_outputs}",
        "seeds": sorted({int(s) for s in metrics["seed"]}) if not metrics.empty else [],
        "git_sha": sorted({s for s in metrics["git_sha"] if s}) if not metrics.empty else [],
        "versions": json.loads(versions[0]) if len(versions) == 1 else [json.loads(v) for v in versions],
        "data_sources": data_sources if data_sources is not None else "not recorded",
        **(extra or {}),
    }
