"""The analysis stage: one teacher-forced pass per model for the token clustering and the calibration.

Question: what does training with (per-sample) label smoothing change in held-out likelihood, predictive
entropy and calibration (``ual.analysis.calibration``), and do hidden states cluster better
(``ual.analysis.clustering``)?

Inputs: an experiment YAML (``analysis`` incl. ``analysis.calibration``, ``train.max_length``, ``model``,
``data.mirror``, ``evaluate.math_split``), and either
- ``--base-model``: the experiment's base model (``model.source`` at ``model.revision``), named ``base``; or
- ``--scenario S --seed N --models NAME=SOURCE ...``: the models trained on scenario S with seed N (every
  variant of the scenario), ``--cluster NAME ...`` the ones whose hidden states are clustered (sft ls ual), and
  ``--base DIR`` the output folder of the ``--base-model`` run, so the base model joins the tables and
  differences.
Every model is loaded once and makes one forward per sequence over the union of its inputs: the clustering's
held-out records of the scenario (``references.heldout_records``, clustered models only) and the references
of every task type of ``analysis.calibration.sizes`` (``references.draw_references``; all models).
Outputs, under ``--out`` (written atomically), each JSON with its ``identity`` (``ual.identity``: experiment,
scenario and seed from the command line; variant null; the base model's run: experiment only):
- ``calibration.json``: per reference set its origin, size, ids' hash and token count; per model and task the
  metrics (NLL, perplexity, entropy, accuracy, confidence, ECE with 15 equal-width bins, Brier) with sample
  bootstrap percentile intervals and the reliability curve (per bin accuracy with interval, confidence,
  count); ``differences``: ``model - sft`` and ``model - base`` for every metric, and UAL minus each of its
  controls (``ual - ls``, ``ual - ual_shuffled``, ``ual - ual_dataset``: ``ual.methods.CONTROL_PAIRS``), with
  paired bootstrap intervals (the same sample weights for both models), under
  ``differences[reference][model][task]``; provenance;
- ``calibration_samples.npz``: the per-sample sufficient statistics behind them (``save_samples`` /
  ``load_samples``: the only writer and reader), read by the scenario runs for the base model;
- with ``--cluster``: ``clustering.json`` and ``tsne.{png,pdf}`` (``clustering.write_clustering``, unchanged).

Commands:
    python -m ual.analysis --experiment experiments/tiny.yaml --base-model --out results/tiny/analysis/base
    python -m ual.analysis --experiment experiments/tiny.yaml --scenario mixed --seed 0 \\
        --models sft=DIR ls=DIR ual=DIR ual_shuffled=DIR --cluster sft ls ual \\
        --base results/tiny/analysis/base --out results/tiny/seed0/analysis/mixed
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ual.analysis import calibration as cal
from ual.analysis.references import (
    REFERENCES_VERSION,
    ReferenceSet,
    draw_references,
    load_references,
    reference_label,
)
from ual.identity import IDENTITY_KEY, Identity, add_identity_arguments
from ual.methods import CONTROL_PAIRS
from ual.provenance import replace_atomically
from ual.scenarios import SCENARIOS

logger = logging.getLogger(__name__)

__all__ = ["BASE", "STAGE_VERSION", "BaseRun", "ModelScores", "load_samples", "main", "run_stage", "save_samples"]

STAGE_VERSION = 1
BASE = "base"  # the name of the untrained base model in every calibration output
REFERENCE_MODELS = ("sft", BASE)  # the differences are taken against these, where present
SAMPLE_FIELDS = ("n_tokens", "bin_count", "bin_confidence", "bin_correct")


@dataclass
class ModelScores:
    source: str
    stats: dict[str, cal.SampleStatistics]  # task -> per-sample statistics


def reference_sets(experiment: Any, tokenizer: Any) -> dict[str, tuple[ReferenceSet, list[Any]]]:
    """Every task type's drawn references and their examples under ``tokenizer`` (as training tokenises)."""
    from ual.analysis.hidden_states import tokenize_examples

    calibration, max_length = experiment.analysis.calibration, experiment.train.max_length
    template = experiment.model.prompt_template
    out = {}
    for task, size in calibration.sizes.items():
        records, origin = load_references(experiment, task)
        has_target = [len(e.input_ids) > e.first_target
                      for e in tokenize_examples(records, tokenizer, max_length, template)]
        drawn = draw_references(task, records, origin, has_target, size, experiment.analysis.seed, max_length)
        out[task] = (drawn, tokenize_examples(drawn.records, tokenizer, max_length, template))
        logger.info("%s: %d references drawn from %s (%d of %d with a response token)", task,
                    len(drawn.records), origin, drawn.n_eligible, drawn.n_available)
    return out


def _load(source: str, experiment: Any, base: bool) -> tuple[Any, Any]:
    from ual.models import load_model

    model, tokenizer = load_model(
        source, revision=experiment.model.revision if base else None, dtype=experiment.model.dtype,
        num_hidden_layers=experiment.model.num_hidden_layers,
    )
    model.eval()
    return model, tokenizer


def score_model(
    name: str,
    source: str,
    experiment: Any,
    references: Mapping[str, tuple[ReferenceSet, list[Any]]] | None,
    heldout: list[dict[str, Any]] | None,
    workdir: Path,
    base: bool = False,
) -> tuple[ModelScores, Any, Mapping[str, tuple[ReferenceSet, list[Any]]]]:
    """Load one model, make its pass, and return its calibration statistics and (if ``heldout``) clustering.

    ``references`` None: drawn here with this model's tokenizer (the first model of a run). Returns the
    scores, the ``clustering.ModelAnalysis`` (None without ``heldout``) and the references used (drawn set and
    its ``TargetExample`` list per task).
    """
    from ual.analysis import hidden_states as hs
    from ual.analysis.clustering import measure_states

    analysis = experiment.analysis
    max_length = experiment.train.max_length
    model, tokenizer = _load(source, experiment, base)
    if references is None:
        references = reference_sets(experiment, tokenizer)
    else:  # the draw is shared; a model that tokenises the references otherwise cannot be paired
        template = experiment.model.prompt_template
        for task, (drawn, examples) in references.items():
            if hs.tokenize_examples(drawn.records, tokenizer, max_length, template) != examples:
                raise ValueError(
                    f"model {name} ({source}) tokenises the {task} references differently from the first model; "
                    "the calibration compares models of one tokenizer only"
                )
    request = None
    examples: list[Any] = []
    if heldout is not None:
        request = hs.plan_collection(
            heldout, tokenizer, top_k=analysis.top_k_tokens, max_states=analysis.max_states, seed=analysis.seed,
            max_length=max_length, prompt_template=experiment.model.prompt_template,
        )
        examples = list(request.examples)
    offsets = {}
    for task, (_, task_examples) in references.items():
        offsets[task] = (len(examples), len(examples) + len(task_examples))
        examples.extend(task_examples)
    first_scored = offsets[next(iter(offsets))][0] if offsets else len(examples)
    try:
        result = hs.teacher_forced_pass(
            model, examples, plan=request.plan if request else None, middle_layer=analysis.middle_layer,
            workdir=workdir, score=range(first_scored, len(examples)), batch_size=analysis.batch_size,
            max_length=max_length, pad_id=hs.pad_token_id(tokenizer), chunk_size=analysis.calibration.chunk_size,
        )
    except ValueError as exc:
        raise ValueError(f"model {name} ({source}): {exc}") from None
    del model
    gc.collect()
    stats = {}
    for task, (lo, hi) in offsets.items():
        per_example = result.tokens[lo - first_scored : hi - first_scored]
        tokens = {field: np.concatenate([t[field] for t in per_example]) for field in cal.TOKEN_FIELDS}
        index = np.repeat(np.arange(hi - lo), [len(t["nll"]) for t in per_example])
        stats[task] = cal.sample_statistics(tokens, index, hi - lo)
    clustered = None
    if request is not None:
        clustered = measure_states(source, hs.collected_states(request, result), tokenizer, analysis)
    return ModelScores(source, stats), clustered, references


# --------------------------------------------------------------------------- per-sample statistics file


def save_samples(path: Path, scores: Mapping[str, ModelScores], references: Mapping[str, ReferenceSet]) -> None:
    """``calibration_samples.npz``: ``<model>/<task>/<field>`` arrays and ``ids/<task>`` (reference ids)."""
    arrays: dict[str, np.ndarray] = {}
    for task, drawn in references.items():
        arrays[f"ids/{task}"] = np.array([record["id"] for record in drawn.records])
    for name, model in scores.items():
        for task, stats in model.stats.items():
            for field in SAMPLE_FIELDS:
                arrays[f"{name}/{task}/{field}"] = getattr(stats, field)
            for field in cal.TOKEN_FIELDS:
                arrays[f"{name}/{task}/sum_{field}"] = stats.sums[field]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    replace_atomically(path, lambda temp: temp.write_bytes(buffer.getvalue()))


def load_samples(path: Path, model: str) -> tuple[dict[str, cal.SampleStatistics], dict[str, list[str]]]:
    """One model's statistics per task and the reference ids per task from ``save_samples``' file."""
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read calibration samples ({exc})") from None
    with data:
        ids = {key.removeprefix("ids/"): data[key].tolist() for key in data.files if key.startswith("ids/")}
        stats = {}
        for task in ids:
            prefix = f"{model}/{task}/"
            missing = [f for f in (*SAMPLE_FIELDS, *(f"sum_{t}" for t in cal.TOKEN_FIELDS))
                       if prefix + f not in data.files]
            if missing:
                raise ValueError(f"{path}: no field '{prefix}{missing[0]}' (model '{model}' not in this file?)")
            stats[task] = cal.SampleStatistics(
                **{field: data[prefix + field] for field in SAMPLE_FIELDS},
                sums={field: data[f"{prefix}sum_{field}"] for field in cal.TOKEN_FIELDS},
            )
    return stats, ids


# --------------------------------------------------------------------------- calibration.json


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the base model's calibration ({exc})") from None


def model_entry(scores: ModelScores, resamples: int, seed: int) -> dict[str, Any]:
    return {
        "source": scores.source,
        "tasks": {
            task: {
                "n_samples": stats.n_samples,
                "n_tokens": int(stats.n_tokens.sum()),
                "metrics": cal.bootstrap_metrics(stats, resamples, seed),
                "reliability": cal.reliability_intervals(stats, resamples, seed),
            }
            for task, stats in scores.stats.items()
        },
    }


def compared_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """``(model, reference)`` pairs of ``differences`` among ``models``: every model against each of
    ``REFERENCE_MODELS``, and each method against its controls (``ual.methods.CONTROL_PAIRS``: UAL - LS,
    UAL - shuffled, UAL - per-dataset), where both were scored."""
    pairs = [(name, reference) for reference in REFERENCE_MODELS if reference in models
             for name in models if name != reference]
    return pairs + [(method, control) for method, control in CONTROL_PAIRS if method in models and control in models]


def differences(scores: Mapping[str, ModelScores], resamples: int, seed: int) -> dict[str, Any]:
    """``{reference: {model: {task: {metric: interval}}}}``: ``model - reference``, paired (the same bootstrap
    weights for both, and for every pair), for the pairs of ``compared_pairs``."""
    out: dict[str, Any] = {}
    for name, reference in compared_pairs(list(scores)):
        for task in scores[reference].stats:
            pair = {reference: scores[reference].stats[task], name: scores[name].stats[task]}
            values = cal.paired_differences(pair, reference, resamples, seed)[name]
            out.setdefault(reference, {}).setdefault(name, {})[task] = values
    return out


@dataclass(frozen=True)
class BaseRun:
    """The ``--base-model`` run a scenario run joins: its per-sample statistics, reference ids and source."""

    samples: Path
    stats: dict[str, cal.SampleStatistics]
    ids: dict[str, list[str]]
    source: str


def read_base_run(base_dir: str | Path) -> BaseRun:
    """The base model's ``calibration_samples.npz`` and source (``calibration.json``) under ``base_dir``."""
    samples = Path(base_dir) / "calibration_samples.npz"
    stats, ids = load_samples(samples, BASE)
    source = _load_json(Path(base_dir) / "calibration.json")["models"][BASE]["source"]
    return BaseRun(samples, stats, ids, source)


def _check_models(models: Mapping[str, str], cluster: Sequence[str], identity: Identity) -> None:
    unknown = [name for name in cluster if name not in models]
    if unknown:
        raise ValueError(f"--cluster names {unknown}, which are not among --models {list(models)}")
    if cluster and identity.scenario is None:
        raise ValueError("clustering needs --scenario (its held-out records are the scenario's)")


def score_models(
    experiment: Any,
    models: Mapping[str, str],
    out_dir: Path,
    cluster: Sequence[str],
    heldout: list[dict[str, Any]] | None,
    base_model: bool,
) -> tuple[dict[str, ModelScores], dict[str, Any], dict[str, ReferenceSet]]:
    """Every model's pass, in order: its calibration statistics, the clustering measures of those in
    ``cluster``, and the references drawn with the first model's tokenizer."""
    scores: dict[str, ModelScores] = {}
    clustered = {}
    references = None
    for name, source in models.items():
        logger.info("model %s <- %s", name, source)
        # States stream to the output disk (not /tmp, which may be RAM) and are deleted afterwards.
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".states-{name}-") as workdir:
            scores[name], analysis, references = score_model(
                name, source, experiment, references, heldout if name in cluster else None, Path(workdir),
                base=base_model and name == BASE,
            )
        if analysis is not None:
            clustered[name] = analysis
    return scores, clustered, {task: value[0] for task, value in (references or {}).items()}


def join_base(scores: dict[str, ModelScores], drawn: Mapping[str, ReferenceSet], base: BaseRun
              ) -> dict[str, ModelScores]:
    """``base`` first, then ``scores``; the base run must have scored the very same references."""
    for task, ref in drawn.items():
        if base.ids.get(task) != [record["id"] for record in ref.records]:
            raise ValueError(
                f"{base.samples}: the base model was scored on other {task} references than these models "
                "(rerun the base analysis with this experiment)"
            )
    return {BASE: ModelScores(base.source, base.stats), **scores}


def calibration_report(
    experiment: Any,
    identity: Identity,
    drawn: Mapping[str, ReferenceSet],
    scores: Mapping[str, ModelScores],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``calibration.json`` (module docstring)."""
    resamples, seed = experiment.analysis.calibration.bootstrap_resamples, experiment.analysis.seed
    return {
        IDENTITY_KEY: identity.as_record(),
        "experiment": identity.experiment,
        "scenario": identity.scenario,
        "stage_version": STAGE_VERSION,
        "calibration_version": cal.CALIBRATION_VERSION,
        "references_version": REFERENCES_VERSION,
        "max_length": experiment.train.max_length,
        "binning": f"top-1 confidence in {cal.N_BINS} equal-width bins (scikit-learn calibration_curve, uniform)",
        "targets": "every response token of the reference except the appended EOS, cut at train.max_length",
        "bootstrap": {"method": "sample bootstrap (references re-weighted), percentile intervals; differences "
                                "paired (the same weights for both models)",
                      "confidence": cal.CONFIDENCE, "resamples": resamples, "seed": seed},
        "references": {
            task: {"label": reference_label(experiment, task), "origin": ref.origin, "n_available": ref.n_available,
                   "n_eligible": ref.n_eligible, "n_samples": len(ref.records), "ids_sha256": ref.ids_sha256}
            for task, ref in drawn.items()
        },
        "models": {name: model_entry(model, resamples, seed) for name, model in scores.items()},
        "differences": differences(scores, resamples, seed),
        "provenance": provenance,
    }


def run_stage(
    experiment: Any,
    models: Mapping[str, str],
    out_dir: str | Path,
    *,
    identity: Identity,
    cluster: Sequence[str] = (),
    base_dir: str | Path | None = None,
    base_model: bool = False,
) -> dict[str, Any]:
    """Score every model (and cluster those of ``cluster``); write the outputs of the module docstring.

    ``identity`` is the run's (``--scenario``, ``--seed``); its scenario is the one the models trained on.
    """
    from ual.analysis.clustering import write_clustering
    from ual.analysis.references import heldout_records
    from ual.provenance import run_metadata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_models(models, cluster, identity)
    base = read_base_run(base_dir) if base_dir is not None else None  # a missing base run fails first
    heldout = heldout_records(experiment, identity.scenario) if cluster else None
    scores, clustered, drawn = score_models(experiment, models, out_dir, cluster, heldout, base_model)
    if base is not None:
        scores = join_base(scores, drawn, base)
    if cluster:
        write_clustering(experiment, identity, models, {n: clustered[n] for n in cluster}, heldout, out_dir)
    provenance = run_metadata(stage="ual.analysis", experiment=experiment.name, scenario=identity.scenario,
                              models=dict(models), base=str(base_dir) if base_dir else None)
    report = calibration_report(experiment, identity, drawn, scores, provenance)
    save_samples(out_dir / "calibration_samples.npz", {n: scores[n] for n in models}, drawn)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    replace_atomically(out_dir / "calibration.json", lambda temp: temp.write_text(text))
    logger.info("wrote %s", out_dir / "calibration.json")
    return report


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Analysis stage: clustering and teacher-forced calibration.")
    parser.add_argument("--experiment", required=True, type=Path, help="experiments/<name>.yaml")
    parser.add_argument("--scenario", choices=SCENARIOS, help="the scenario the models trained on")
    add_identity_arguments(parser, scenario=False, variant=False, seed=True)
    parser.add_argument("--models", nargs="+", default=[], metavar="NAME=SOURCE",
                        help="trained models, e.g. sft=DIR ls=DIR ual=DIR (sft first: the clustering reference)")
    parser.add_argument("--base-model", action="store_true", help="score the experiment's base model as 'base'")
    parser.add_argument("--cluster", nargs="*", default=[], metavar="NAME", help="models to cluster")
    parser.add_argument("--base", type=Path, help="output folder of the --base-model run")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    return parser.parse_args(argv)


def _models_and_identity(args: argparse.Namespace, experiment: Any) -> tuple[dict[str, str], Identity]:
    """The models to score and the run's identity, from the command line; bad combinations are errors."""
    from ual.analysis.clustering import parse_models

    models = parse_models(args.models)
    if args.base_model:
        if models or args.base or args.cluster or args.scenario or args.seed is not None:
            raise ValueError("--base-model scores the base model alone (no --models, --base, --cluster, "
                             "--scenario or --seed)")
        return {BASE: experiment.model.source}, Identity(experiment=experiment.name)
    if not models:
        raise ValueError("give --models NAME=SOURCE ... or --base-model")
    if BASE in models:
        raise ValueError(f"the model name '{BASE}' is reserved for the base model (--base-model, --base)")
    if args.scenario is None or args.seed is None:
        raise ValueError("trained models need --scenario and --seed (the scenario and seed they trained with)")
    return models, Identity(experiment=experiment.name, scenario=args.scenario, seed=args.seed)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ual.experiment import ConfigError, load_experiment
    from ual.data import DataError

    try:
        experiment = load_experiment(args.experiment)
        models, identity = _models_and_identity(args, experiment)
        run_stage(experiment, models, args.out, identity=identity, cluster=args.cluster, base_dir=args.base,
                  base_model=args.base_model)
    except (ConfigError, DataError, ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
