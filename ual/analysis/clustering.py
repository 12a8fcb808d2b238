"""Token clustering of hidden states: metrics with bootstrap intervals, t-SNE figure (docs/method.md).

Question (the paper's claim): do hidden states cluster by target token better after UAL than after SFT / LS?

Inputs: the states of each clustered model (``ual.analysis.hidden_states.CollectedStates``, collected by the
analysis stage ``python -m ual.analysis``, see ``ual.analysis.stage``) on the held-out records of
``ual.analysis.references.heldout_records`` (scenario data minus training ids), and the experiment
(``analysis`` section, ``train.max_length``).
Outputs, under the stage's ``--out`` (written atomically):
- ``clustering.json``: its ``identity`` (``ual.identity``: experiment, scenario, seed); per model and per layer (``last``; ``layer_<i>`` for ``analysis.middle_layer``) the
  metrics of ``ual.analysis.metrics`` (silhouette (cosine), Davies-Bouldin, Calinski-Harabasz on L2-normalised
  states) with bootstrap intervals, the number of states, the K tokens (id, text, count), a hash of the
  drawn positions, the held-out ids' hash, provenance (``ual.provenance.run_metadata``), a flat ``rows``
  list (model, layer, metric, value, ci_low, ci_high, higher_is_better) for tables, and ``differences``:
  every other model minus the first one (sft in ``sft=.. ls=.. ual=..``) with a paired bootstrap interval.
- ``tsne.png`` and ``tsne.pdf``: one t-SNE panel per model (last layer), coloured by target token, fixed seed;
  the same states give byte-identical files (no date in the PDF; ``tsne_input_sha256`` per model in
  clustering.json names the states embedded).

Command: written by ``python -m ual.analysis`` (``ual.analysis.stage``) for the models of ``--cluster``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ual import stats as st
from ual.analysis.hidden_states import COLLECTION_VERSION
from ual.analysis.metrics import (
    CONFIDENCE,
    METRICS,
    METRICS_VERSION,
    bootstrap_replicates,
    cluster_metrics,
    l2_normalise,
)
from ual.analysis.tsne import make_tsne_figure, tsne_embedding, tsne_input_sha256
from ual.identity import IDENTITY_KEY, Identity
from ual.provenance import replace_atomically

logger = logging.getLogger(__name__)

__all__ = [
    "ModelAnalysis",
    "paired_differences",
    "measure_states",
    "save_figure",
    "parse_models",
    "write_clustering",
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


def measure_states(source: str, collected: Any, tokenizer: Any, analysis: Any) -> ModelAnalysis:
    """Clustering metrics (with bootstrap replicates) of every analysed layer and the t-SNE of the last one."""
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
            "metrics": {metric: st.normal_interval(point[metric], replicates[name][metric]) for metric in METRICS},
        }
    unit_last = l2_normalise(collected.states["last"])
    result["tsne_input_sha256"] = tsne_input_sha256(unit_last)  # same hash, same panel (ual.analysis.tsne)
    embedding = tsne_embedding(unit_last, analysis.seed, analysis.tsne_perplexity)
    return ModelAnalysis(result, replicates, embedding, np.array(collected.labels), token_text)


def paired_differences(analyses: Mapping[str, ModelAnalysis], reference: str) -> dict[str, Any]:
    """``model - reference`` for every metric, with a paired bootstrap interval (``ual.stats``).

    Only models measured on the reference's very positions (same ``selection_sha256``, i.e. same tokenizer,
    records and seed) are paired; the others are listed under ``unpaired``.
    """
    ref = analyses[reference]
    paired = {name: other for name, other in analyses.items()
              if other.result["selection_sha256"] == ref.result["selection_sha256"]}
    unpaired = [name for name in analyses if name not in paired]
    by_layer = {
        layer: st.paired_differences(
            {name: {metric: values["value"] for metric, values in other.result["layers"][layer]["metrics"].items()}
             for name, other in paired.items()},
            {name: other.replicates[layer] for name, other in paired.items()},
            reference,
            st.normal_interval,
        )
        for layer in ref.replicates
    }
    pairs = {name: {layer: by_layer[layer][name] for layer in ref.replicates} for name in paired if name != reference}
    return {"reference": reference, "pairs": pairs, "unpaired": unpaired}


def write_clustering(
    experiment: Any,
    identity: Identity,
    models: Mapping[str, str],
    analyses: Mapping[str, ModelAnalysis],
    records: list[dict[str, Any]],
    out_dir: str | Path,
) -> dict[str, Any]:
    """clustering.json and tsne.{png,pdf} of the measured models, in ``analyses`` order.

    The first model is the reference of the paired differences (sft in ``sft=.. ls=.. ual=..``); ``identity``
    is the run's (``ual.identity``: experiment, scenario, seed).
    """
    from ual.provenance import run_metadata

    scenario = identity.scenario
    out_dir = Path(out_dir)
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
        stage="ual.analysis", experiment=experiment.name, scenario=scenario,
        models={name: models[name] for name in analyses},
    )
    titles = {
        name: f"{name}: silhouette {a.result['layers']['last']['metrics']['silhouette_cosine']['value']:.3f}"
        for name, a in analyses.items()
    }
    panels = {name: (a.embedding, a.labels) for name, a in analyses.items()}
    figure = make_tsne_figure(panels, token_text, titles)
    figures = save_figure(
        figure, out_dir, "tsne",
        provenance=f"ual.analysis {experiment.name}/{scenario} git {provenance.get('git_sha')}",
    )
    ids_digest = hashlib.sha256("\n".join(sorted(str(r.get("id")) for r in records)).encode()).hexdigest()
    report = {
        IDENTITY_KEY: identity.as_record(),
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
