"""Read the workflow's result files into tidy tables (pandas), with nothing computed but unit changes.

Every result file carries its ``identity`` (``ual.identity``: experiment, scenario, variant, seed, from the
command line that made it); scenario, variant and seed are read from there only, never from a path.
Inputs (paths are given explicitly by the workflow; nothing is globbed):
- evaluate metrics (``python -m ual.evaluate``): ``task``, a ``metric`` name whose value is under that key,
  and either ``standard_error`` or an interval ``ci_low``/``ci_high`` of that value, plus ``provenance``
  (a judged task also ``position_bias`` and ``n_unparsed``); a file with a ``crosscheck`` object (GSM8K:
  the same generations under other scorers) is read by ``read_crosscheck`` too. The task's
  ``percent_scale`` (``ual.tasks``) turns its values into percent;
- elicited scores ``results/<exp>/elicit/scores[.<source>].jsonl`` (ual.elicit);
- clustering and calibration JSON (``python -m ual.analysis``, ``ual.analysis.stage``);
- training metrics (``python -m ual.train``);
- epsilon files ``results/<exp>/epsilon/<scenario>/<variant>[.seed<s>].jsonl`` and their sidecars
  (``ual.smoothing``: the sidecar carries the identity);
- a judged task's per-pair annotations ``<metrics stem>.annotations.json`` beside its metrics file
  (``ual.tasks.alpacaeval``: ``instruction``, ``preference`` in 1..2, both orders averaged).
Outputs: pandas DataFrames; percentages are in 0..100.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ual.identity import Identity, read_identity
from ual.variants import Variant

__all__ = [
    "read_metrics",
    "read_crosscheck",
    "read_scores",
    "read_clustering",
    "read_calibration",
    "read_reliability",
    "read_train_logs",
    "read_epsilon",
    "read_preferences",
    "provenance_summary",
]
REPORTED_SCORER = "ual"  # read_crosscheck's name for the accuracy the task itself reports


def _load(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read result JSON ({exc})") from None


def _identity(path: str | Path, data: dict[str, Any], *fields: str) -> Identity:
    """The result's identity; every one of ``fields`` must be set (a variant must parse)."""
    identity = read_identity(data, path)
    for field in fields:
        if getattr(identity, field) is None:
            raise ValueError(f"{path}: its identity has no {field} (rerun the stage that wrote it)")
    if identity.variant is not None:
        try:
            Variant.parse(identity.variant)
        except ValueError as exc:
            raise ValueError(f"{path}: identity.variant: {exc}") from None
    return identity


def _percent_scale(path: str | Path, task: str) -> float:
    """What the task's metric is multiplied by to be in percent (``Task.percent_scale``)."""
    from ual.tasks import get_task

    try:
        return get_task(task).percent_scale
    except KeyError as exc:
        raise ValueError(f"{path}: {exc.args[0]}") from None


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else scale * value


def _error(data: dict[str, Any], scale: float) -> tuple[float | None, str | None]:
    """(error in percent, its kind): the standard error, else half the 95 % interval, else none."""
    if data.get("standard_error") is not None:
        return _scaled(data["standard_error"], scale), "se"
    if data.get("ci_low") is not None:
        return _scaled((data["ci_high"] - data["ci_low"]) / 2, scale), "ci95/2"
    return None, None


def read_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (scenario, variant, seed, task): value and error in percent, judge, provenance."""
    rows = []
    for path in paths:
        data = _load(path)
        identity = _identity(path, data, "scenario", "variant", "seed")
        for key in ("task", "metric"):
            if data.get(key) is None:
                raise ValueError(f"{path}: metric file lacks '{key}'")
        metric = data["metric"]
        if metric not in data:
            raise ValueError(f"{path}: metric '{metric}' has no value in the file")
        scale = _percent_scale(path, data["task"])
        error, error_kind = _error(data, scale)
        provenance = data.get("provenance", {})
        rows.append(
            {
                "scenario": identity.scenario,
                "variant": identity.variant,
                "seed": identity.seed,
                "task": data["task"],
                "metric": metric,
                "value": _scaled(data[metric], scale),
                "error": error,
                "error_kind": error_kind,
                "n": data.get("n"),
                "position_bias": data.get("position_bias"),  # judged: % of preference to the 2nd shown
                "n_unparsed": data.get("n_unparsed"),  # judged: pairs without a judge verdict
                "judge": data.get("judge"),
                "model": data.get("model"),
                "git_sha": provenance.get("git_sha"),
                "versions": json.dumps(provenance.get("versions", {}), sort_keys=True),
                "file": str(path),
            }
        )
    return pd.DataFrame(rows)


def read_crosscheck(paths: list[str | Path]) -> pd.DataFrame:
    """Accuracy by scorer, one row per (scenario, variant, seed, scorer), of every metrics file with a
    ``crosscheck`` object (GSM8K, ``ual.tasks.gsm8k``): the task's own scorer (``REPORTED_SCORER``) and each
    of the crosscheck's; the scorer is in the ``task`` column, so the table builders treat scorers as they
    treat tasks. Files without a crosscheck are skipped."""
    rows = []
    for path in paths:
        data = _load(path)
        if data.get("crosscheck") is None:
            continue
        if not isinstance(data["crosscheck"], dict):
            raise ValueError(f"{path}: field 'crosscheck' is not an object of scorers")
        identity = _identity(path, data, "scenario", "variant", "seed")
        scale, metric = _percent_scale(path, data.get("task")), data.get("metric")
        for scorer, result in {REPORTED_SCORER: data, **data["crosscheck"]}.items():
            if result.get(metric) is None or result.get("ci_low") is None:
                raise ValueError(
                    f"{path}: crosscheck scorer '{scorer}' lacks '{metric}' or 'ci_low'/'ci_high'")
            rows.append(
                {
                    "scenario": identity.scenario,
                    "variant": identity.variant,
                    "seed": identity.seed,
                    "task": scorer,
                    "value": scale * result[metric],
                    "error": scale / 2 * (result["ci_high"] - result["ci_low"]),
                    "error_kind": "ci95/2",
                    "n": result.get("n"),
                }
            )
    columns = ["scenario", "variant", "seed", "task", "value", "error", "error_kind", "n"]
    return pd.DataFrame(rows, columns=columns)


def read_scores(paths: str | Path | list[str | Path]) -> pd.DataFrame:
    """The elicited uncertainty of every training sample (one row per record, validated by
    ``ual.elicit.read_scores``), from one scores file or several (one per uncertainty ``source``)."""
    from ual.elicit import read_scores as read_score_records

    paths = [paths] if isinstance(paths, str | Path) else paths
    return pd.DataFrame([row for path in paths for row in read_score_records(path)])


def read_epsilon(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (scenario, variant, seed, training sample): dataset, uncertainty, epsilon, and the
    uncertainty ``source`` and ``epsilon_mapping`` UAL's eps came from (the sidecar's; validated by
    ``ual.smoothing.read_epsilon_file``)."""
    from ual.smoothing import read_epsilon_file

    rows = []
    for path in paths:
        lines, meta = read_epsilon_file(path)
        if meta is None:
            raise ValueError(f"{path}: no sidecar (its identity); rerun python -m ual.smoothing")
        identity = _identity(path, meta, "scenario", "variant")
        for line in lines:
            rows.append({"scenario": identity.scenario, "variant": identity.variant, "seed": identity.seed,
                         "dataset": line.dataset, "uncertainty": line.uncertainty, "epsilon": line.epsilon,
                         "source": meta.get("source"), "epsilon_mapping": meta.get("epsilon_mapping")})
    return pd.DataFrame(rows, columns=["scenario", "variant", "seed", "dataset", "uncertainty", "epsilon",
                                       "source", "epsilon_mapping"])


def read_preferences(paths: list[str | Path]) -> pd.DataFrame:
    """The judge's preference per instruction, one row per (scenario, variant, seed, task, instruction), of
    every metrics file judged in both orders (``judge_orders: both``; its annotations file beside it,
    ``<metrics stem>.annotations.json``). ``preference`` is alpaca_eval's (1 = reference wins, 2 = the
    model wins), the mean of the two orders; NaN where an order has no verdict."""
    rows = []
    for path in paths:
        data = _load(path)
        if data.get("judge_orders") != "both":
            continue
        identity = _identity(path, data, "scenario", "variant", "seed")
        annotations = Path(path).with_suffix(".annotations.json")
        if not annotations.is_file():
            raise ValueError(f"{path}: judged in both orders but its annotations file {annotations} is missing")
        for pair in _load(annotations):
            if "instruction" not in pair or "preference" not in pair:
                raise ValueError(f"{annotations}: a row lacks 'instruction' or 'preference'")
            preference = pair["preference"]
            rows.append({"scenario": identity.scenario, "variant": identity.variant, "seed": identity.seed,
                         "task": data["task"], "instruction": pair["instruction"],
                         "preference": math.nan if preference is None else float(preference)})
    return pd.DataFrame(rows, columns=["scenario", "variant", "seed", "task", "instruction", "preference"])


def read_clustering(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (scenario, seed, model, layer, metric) with value and bootstrap interval."""
    rows = []
    for path in paths:
        data = _load(path)
        identity = _identity(path, data, "scenario", "seed")
        for model, result in data["models"].items():
            for layer, layer_result in result["layers"].items():
                for metric, values in layer_result["metrics"].items():
                    rows.append(
                        {
                            "scenario": identity.scenario,
                            "seed": identity.seed,
                            "model": model,
                            "layer": layer,
                            "metric": metric,
                            "value": values["value"],
                            "ci_low": values.get("ci_low"),
                            "ci_high": values.get("ci_high"),
                            "n_states": result.get("n_states"),
                        }
                    )
    return pd.DataFrame(rows)


def _interval(path: str | Path, where: str, values: Any) -> dict[str, float]:
    """A {value, ci_low, ci_high} entry, every number finite; else an error naming the file and field."""
    if not isinstance(values, dict):
        raise ValueError(f"{path}: field '{where}' is not a {{value, ci_low, ci_high}} object")
    for key in ("value", "ci_low", "ci_high"):
        number = values.get(key)
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ValueError(f"{path}: field '{where}.{key}' is {number!r}, not a finite number")
    return {key: float(values[key]) for key in ("value", "ci_low", "ci_high")}


def _calibration(path: str | Path) -> tuple[dict[str, Any], Identity]:
    data = _load(path)
    for key in ("references", "models", "differences"):
        if key not in data:
            raise ValueError(f"{path}: calibration file lacks '{key}'")
    return data, _identity(path, data, "scenario", "seed")


def read_calibration(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (scenario, seed, model, task, quantity, metric): value and 95 % interval.

    ``quantity`` is ``value`` (the model's metric) or ``minus_<reference>`` (the paired difference
    model - reference, e.g. ``minus_sft``, ``minus_base``). Every number must be finite.
    """
    rows = []
    for path in paths:
        data, identity = _calibration(path)
        seed, scenario = identity.seed, identity.scenario
        labels = {task: ref.get("label", task) for task, ref in data["references"].items()}

        def add(model: str, task: str, quantity: str, metrics: Any, where: str) -> None:
            if task not in labels:
                raise ValueError(f"{path}: field '{where}' names task '{task}', which has no references entry")
            for metric, values in metrics.items():
                rows.append({"scenario": scenario, "seed": seed, "model": model, "task": task,
                             "task_label": labels[task], "quantity": quantity, "metric": metric,
                             **_interval(path, f"{where}.{metric}", values),
                             "n_samples": data["references"][task].get("n_samples")})

        for model, entry in data["models"].items():
            for task, result in entry.get("tasks", {}).items():
                add(model, task, "value", result.get("metrics", {}), f"models.{model}.tasks.{task}.metrics")
        for reference, by_model in data["differences"].items():
            for model, by_task in by_model.items():
                for task, metrics in by_task.items():
                    add(model, task, f"minus_{reference}", metrics, f"differences.{reference}.{model}.{task}")
    return pd.DataFrame(rows, columns=["scenario", "seed", "model", "task", "task_label", "quantity", "metric",
                                       "value", "ci_low", "ci_high", "n_samples"])


def read_reliability(paths: list[str | Path]) -> pd.DataFrame:
    """Reliability curves: one row per (scenario, seed, model, task, bin): confidence, accuracy, interval."""
    rows = []
    for path in paths:
        data, identity = _calibration(path)
        seed, scenario = identity.seed, identity.scenario
        for model, entry in data["models"].items():
            for task, result in entry.get("tasks", {}).items():
                curve = result.get("reliability") or {}
                fields = ("bin", "confidence", "accuracy", "count", "ci_low", "ci_high")
                if any(not isinstance(curve.get(f), list) for f in fields):
                    raise ValueError(f"{path}: field 'models.{model}.tasks.{task}.reliability' lacks one of {fields}")
                for k, values in enumerate(zip(*(curve[f] for f in fields), strict=True)):
                    row = dict(zip(fields, values, strict=True))
                    for field in ("confidence", "accuracy"):
                        if not isinstance(row[field], int | float) or not math.isfinite(row[field]):
                            raise ValueError(f"{path}: field 'models.{model}.tasks.{task}.reliability.{field}[{k}]' "
                                             f"is {row[field]!r}, not a finite number")
                    rows.append({"scenario": scenario, "seed": seed, "model": model, "task": task,
                                 "task_label": data["references"].get(task, {}).get("label", task), **row})
    return pd.DataFrame(rows, columns=["scenario", "seed", "model", "task", "task_label", "bin", "confidence",
                                       "accuracy", "count", "ci_low", "ci_high"])


def read_train_logs(paths: list[str | Path]) -> pd.DataFrame:
    """Per-step training loss of every run: scenario, variant, seed, step, loss."""
    rows = []
    for path in paths:
        data = _load(path)
        identity = _identity(path, data, "scenario", "variant", "seed")
        for entry in data.get("steps", []):
            if entry.get("loss") is not None:
                rows.append({"scenario": identity.scenario, "variant": identity.variant,
                             "seed": identity.seed, "step": entry["step"], "loss": entry["loss"]})
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
