"""Paper tables from tidy result frames: pure builders, and one writer for Markdown, LaTeX and CSV.

Tables (``paper_tables/<exp>/<name>.{md,tex,csv}`` plus ``<name>.provenance.json``):
- ``table_main``: scenario x method (sft, ls, ual): AlpacaEval win rate +- SE, GSM8K and MATH accuracy
  (+- half the bootstrap 95 % interval), then per scenario UAL - SFT in points and relative %, and the paper's
  reported numbers beside the mixed scenario (10.62 % high-entropy, 1.81 % low-entropy); "not reported" elsewhere.
- ``table_ablation``: the ablation scenario: sft, ls, ual_shuffled, ual_dataset and UAL at every eps_max of
  the sweep.
- ``table_clustering``: silhouette (cosine), Davies-Bouldin, Calinski-Harabasz per scenario, model and layer.
- ``table_calibration``: scenario x task type x model (base and every trained variant): teacher-forced NLL,
  perplexity, entropy, ECE, Brier of held-out references with 95 % intervals, and the paired differences
  model - SFT and model - base with paired bootstrap intervals (``ual.analysis.stage``).
- ``table_uncertainty``: elicited uncertainty by dataset and source (verbalized, entropy: n, missing, mean,
  sd, quartiles) and, where both sources scored a dataset, their Spearman rank correlation.
Every cell is a string, formatted here once, so the Markdown, LaTeX and CSV files hold the same text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ual.config import MAIN_TABLE_METHODS
from ual.variants import Variant, ual_at

__all__ = [
    "NOT_REPORTED",
    "main_table",
    "ablation_table",
    "clustering_table",
    "calibration_table",
    "uncertainty_table",
    "variant_label",
    "write_table",
]

NOT_REPORTED = "not reported"
TASK_COLUMNS = {"alpacaeval": "AlpacaEval win rate (%)", "gsm8k": "GSM8K acc. (%)", "math": "MATH acc. (%)"}
LOW_ENTROPY = ("gsm8k", "math")
METHOD_LABELS = {"sft": "SFT", "ls": "LS (constant eps)", "ual": "UAL", "ual_shuffled": "UAL, shuffled eps",
                 "ual_dataset": "UAL, per-dataset mean eps", "base": "base model (untrained)"}


def _fmt(value: float | None, error: float | None = None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    if error is not None and not (isinstance(error, float) and math.isnan(error)):
        text += f" ± {error:.{digits}f}"
    return text


def _cell(metrics: pd.DataFrame, scenario: str, variant: str, task: str) -> tuple[float | None, float | None]:
    """Mean over seeds of the value and of the per-run error (both in percent); None when not run."""
    rows = metrics[(metrics.scenario == scenario) & (metrics.variant == variant) & (metrics.task == task)]
    if rows.empty:
        return None, None
    error = rows["error"].dropna()
    return float(rows["value"].mean()), (float(error.mean()) if len(error) else None)


def _relative(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return 100.0 * (new - old) / old


def main_table(metrics: pd.DataFrame, reported: pd.DataFrame, scenarios: list[str], tasks: list[str]) -> pd.DataFrame:
    """Scenario x method results, UAL - SFT (points and relative), and the paper's headline numbers."""
    task_cols = [TASK_COLUMNS[t] for t in tasks]
    low = [t for t in LOW_ENTROPY if t in tasks]
    rows: list[dict[str, str]] = []
    for scenario in scenarios:
        for method in MAIN_TABLE_METHODS:
            row = {"scenario": scenario, "row": METHOD_LABELS[method]}
            for task, col in zip(tasks, task_cols, strict=True):
                row[col] = _fmt(*_cell(metrics, scenario, method, task))
            row["low-entropy avg."] = ""
            rows.append(row)
        points = {"scenario": scenario, "row": "UAL - SFT (points)"}
        relative = {"scenario": scenario, "row": "UAL - SFT (relative %)"}
        rel_values = {}
        for task, col in zip(tasks, task_cols, strict=True):
            ual, sft = _cell(metrics, scenario, "ual", task)[0], _cell(metrics, scenario, "sft", task)[0]
            points[col] = _fmt(None if ual is None or sft is None else ual - sft)
            rel_values[task] = _relative(ual, sft)
            relative[col] = _fmt(rel_values[task])
        low_rel = [rel_values[t] for t in low if rel_values[t] is not None]
        points["low-entropy avg."] = ""
        relative["low-entropy avg."] = _fmt(sum(low_rel) / len(low_rel)) if low_rel else "n/a"
        paper = {"scenario": scenario, "row": "paper, UAL vs SFT (%)", "low-entropy avg.": NOT_REPORTED}
        for col in task_cols:
            paper[col] = NOT_REPORTED
        for _, entry in reported[reported.scenario == scenario].iterrows():
            cell = f"{entry['value']:.2f}"
            if entry["task_group"].startswith("high_entropy") and TASK_COLUMNS["alpacaeval"] in paper:
                paper[TASK_COLUMNS["alpacaeval"]] = cell
            elif entry["task_group"].startswith("low_entropy"):
                paper["low-entropy avg."] = cell
        rows += [points, relative, paper]
    return pd.DataFrame(rows, columns=["scenario", "row", *task_cols, "low-entropy avg."])


def ablation_table(
    metrics: pd.DataFrame, scenario: str, tasks: list[str], eps_max: float, sweep: list[float]
) -> pd.DataFrame:
    """The controls that test whether the per-sample assignment of epsilon matters, and the eps_max sweep."""
    variants = [("sft", "SFT (eps = 0)", "0"), ("ls", "LS (constant = mean UAL eps)", f"{eps_max:g}"),
                ("ual_shuffled", "UAL, shuffled eps", f"{eps_max:g}"),
                ("ual_dataset", "UAL, per-dataset eps (mean UAL eps of its dataset)", f"{eps_max:g}")]
    for value in sorted({eps_max, *sweep}):
        variants.append((ual_at(value, eps_max).name, f"UAL (eps_max = {value:g})", f"{value:g}"))
    rows = []
    for variant, label, eps in variants:
        if metrics[(metrics.scenario == scenario) & (metrics.variant == variant)].empty:
            continue
        row = {"variant": label, "eps_max": eps}
        for task in tasks:
            row[TASK_COLUMNS[task]] = _fmt(*_cell(metrics, scenario, variant, task))
        row["paper"] = NOT_REPORTED
        rows.append(row)
    return pd.DataFrame(rows, columns=["variant", "eps_max", *[TASK_COLUMNS[t] for t in tasks], "paper"])


def clustering_table(clustering: pd.DataFrame) -> pd.DataFrame:
    """Clustering quality of hidden states by target token (mean over seeds; interval of the first seed)."""
    names = {"silhouette_cosine": "silhouette (cosine, higher better)",
             "davies_bouldin": "Davies-Bouldin (lower better)",
             "calinski_harabasz": "Calinski-Harabasz (higher better)"}
    rows = []
    for (scenario, model, layer), group in clustering.groupby(["scenario", "model", "layer"], sort=False):
        row = {"scenario": scenario, "model": METHOD_LABELS.get(model, model), "layer": layer}
        for metric, label in names.items():
            part = group[group.metric == metric]
            if part.empty:
                row[label] = "n/a"
                continue
            first = part.iloc[0]
            interval = (f" [{first['ci95_low']:.3f}, {first['ci95_high']:.3f}]"
                        if first["ci95_low"] is not None and not pd.isna(first["ci95_low"]) else "")
            row[label] = f"{part['value'].mean():.3f}{interval}"
        row["paper"] = "claim: UAL clusters better (metric not reported)"
        rows.append(row)
    return pd.DataFrame(rows)


CALIBRATION_METRICS = {"nll": "NLL (nats/token)", "perplexity": "perplexity", "entropy": "entropy (nats)",
                       "ece": "ECE (15 bins)", "brier": "Brier"}
CALIBRATION_DIFFERENCES = {("sft", "nll"): "NLL - SFT", ("sft", "entropy"): "entropy - SFT",
                           ("sft", "ece"): "ECE - SFT", ("sft", "brier"): "Brier - SFT",
                           ("base", "nll"): "NLL - base"}


def variant_label(name: str) -> str:
    """A table / legend label for a model of the results: a method, a sweep point or the base model."""
    if name in METHOD_LABELS:
        return METHOD_LABELS[name]
    variant = Variant.parse(name)
    return f"UAL (eps_max = {variant.eps_max:g})"


def _model_order(names: set[str]) -> list[str]:
    def key(name: str) -> tuple[int, float, str]:
        order = ["base", *METHOD_LABELS]
        if name in order:
            return (order.index(name), 0.0, name)
        return (len(order), Variant.parse(name).eps_max or 0.0, name)

    return sorted(names, key=key)


def _interval_cell(part: pd.DataFrame, spec: str = ".3f") -> str:
    """Mean over seeds; the 95 % interval of the first seed (every seed's in the JSON)."""
    if part.empty:
        return "n/a"
    first = part.sort_values("seed").iloc[0]
    return f"{part['value'].mean():{spec}} [{first['ci_low']:{spec}}, {first['ci_high']:{spec}}]"


def calibration_table(calibration: pd.DataFrame, scenarios: list[str]) -> pd.DataFrame:
    """Teacher-forced metrics of held-out references and paired differences, scenario x task x model."""
    columns = ["scenario", "task", "model", "references", *CALIBRATION_METRICS.values(),
               *CALIBRATION_DIFFERENCES.values()]
    rows = []
    for scenario in scenarios:
        part = calibration[calibration.scenario == scenario]
        for task in dict.fromkeys(part["task"]):
            of_task = part[part.task == task]
            for model in _model_order(set(of_task["model"])):
                cells = of_task[of_task.model == model]
                values = cells[cells.quantity == "value"]
                row = {"scenario": scenario, "task": of_task["task_label"].iloc[0], "model": variant_label(model),
                       "references": str(int(values["n_samples"].iloc[0])) if len(values) else "n/a"}
                for metric, label in CALIBRATION_METRICS.items():
                    spec = ".4g" if metric == "perplexity" else ".3f"
                    row[label] = _interval_cell(values[values.metric == metric], spec)
                for (reference, metric), label in CALIBRATION_DIFFERENCES.items():
                    if model == reference:
                        row[label] = "reference"
                        continue
                    diff = cells[(cells.quantity == f"minus_{reference}") & (cells.metric == metric)]
                    row[label] = _interval_cell(diff, ".4f")  # differences are small: one more digit
                rows.append(row)
    return pd.DataFrame(rows, columns=columns)


SOURCES = {"verbalized": "verbalized (score 1-10)", "entropy": "entropy (nats)"}
RHO = "Spearman rho, verbalized vs entropy u"


def _rank_correlation(scores: pd.DataFrame, dataset: str) -> str:
    """Spearman rho of the two sources' uncertainty over the samples both scored (``n/a`` otherwise)."""
    from scipy.stats import spearmanr

    part = scores[(scores.dataset == dataset) & scores["uncertainty"].notna()]
    wide = part.pivot_table(index="id", columns="method", values="uncertainty", aggfunc="first")
    if not set(SOURCES) <= set(wide.columns):
        return "n/a (one source)"
    pairs = wide[list(SOURCES)].dropna()
    if len(pairs) < 3 or pairs.nunique().min() < 2:
        return f"n/a ({len(pairs)} paired, constant or too few)"
    rho = spearmanr(pairs["verbalized"], pairs["entropy"]).statistic
    return f"{rho:.3f} (n = {len(pairs)})"


def uncertainty_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Elicited uncertainty by dataset and source; the sources' rank correlation where both exist."""
    if "id" not in scores.columns:
        scores = scores.assign(id=range(len(scores)))
    methods = scores["method"] if "method" in scores.columns else pd.Series("verbalized", index=scores.index)
    scores = scores.assign(method=methods.fillna("verbalized"))
    unknown = sorted(set(scores["method"]) - set(SOURCES))
    if unknown:
        raise ValueError(f"score records of unknown method(s) {unknown}; known: {sorted(SOURCES)}")
    rows = []
    for dataset, by_dataset in scores.groupby("dataset", sort=True):
        rho = _rank_correlation(scores, dataset)
        for method in (m for m in SOURCES if m in set(by_dataset["method"])):
            group = by_dataset[by_dataset.method == method]
            values = group["score"].dropna().astype(float)
            row = {"dataset": dataset, "source": SOURCES[method], "n": str(len(group)),
                   "missing": str(int(group["score"].isna().sum()))}
            if len(values):
                q1, q2, q3 = values.quantile([0.25, 0.5, 0.75])
                sd = values.std(ddof=1) if len(values) > 1 else 0
                row.update({"mean score": f"{values.mean():.2f}", "sd": f"{sd:.2f}", "q25": f"{q1:.2f}",
                            "median": f"{q2:.2f}", "q75": f"{q3:.2f}",
                            "mean u": f"{group['uncertainty'].dropna().mean():.3f}"})
            row[RHO] = rho
            row["paper"] = NOT_REPORTED
            rows.append(row)
    columns = ["dataset", "source", "n", "missing", "mean score", "sd", "q25", "median", "q75", "mean u", RHO,
               "paper"]
    return pd.DataFrame(rows, columns=columns).fillna("n/a")


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                          ("#", r"\#"), ("±", r"$\pm$"), ("$\\pm$", r"$\pm$")):
        text = text.replace(char, escaped)
    return text


def write_table(table: pd.DataFrame, out_dir: Path, name: str, title: str, provenance: dict[str, Any]) -> list[Path]:
    """Write ``name``.md / .tex / .csv (the same cells) and ``name``.provenance.json; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    line = (f"Provenance: experiment {provenance['experiment']}; model {provenance['model']}; elicitor "
            f"{provenance['elicitor']}; judge {provenance['judge']}; seeds {provenance['seeds']}; "
            f"git {', '.join(s[:12] for s in provenance['git_sha']) or 'unknown'}; generated by `python -m ual.report`.")
    body = table.to_markdown(index=False) if not table.empty else "_no results_"
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("md", "tex", "csv")}
    paths["md"].write_text(f"# {title}\n\n{body}\n\n{line}\n")
    header = " & ".join(_latex_escape(str(c)) for c in table.columns)
    lines = [" & ".join(_latex_escape(str(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    tex = [f"% {line}", r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(title)}}}",
           rf"\begin{{tabular}}{{{'l' * len(table.columns)}}}", r"\toprule", header + r" \\", r"\midrule",
           *lines, r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    paths["tex"].write_text("\n".join(tex) + "\n")
    table.to_csv(paths["csv"], index=False)
    sidecar = out_dir / f"{name}.provenance.json"
    sidecar.write_text(json.dumps({"title": title, **provenance}, indent=2, sort_keys=True) + "\n")
    return [*paths.values(), sidecar]
