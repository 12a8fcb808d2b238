"""Paper tables from tidy result frames: pure builders, and one writer for Markdown, LaTeX and CSV.

Tables (``paper_tables/<exp>/<name>.{md,tex,csv}`` plus ``<name>.provenance.json``):
- ``table_main``: scenario x method (sft, ls, ual): AlpacaEval win rate +- SE with the judge's position bias
  beside it (``JUDGE_COLUMN``: % of preference to the second-shown output, 50 = unbiased, and the pairs the
  judge left without a verdict), GSM8K and MATH accuracy
  (+- half the bootstrap 95 % interval), then per scenario UAL - SFT in points and relative %, and the paper's
  reported numbers beside the mixed scenario (10.62 % high-entropy, 1.81 % low-entropy); "not reported" elsewhere.
- ``table_ablation``: the ablation scenario: sft, ls, ual_shuffled and UAL at every eps_max of the sweep.
- ``table_clustering``: silhouette (cosine), Davies-Bouldin, Calinski-Harabasz per scenario, model and layer.
- ``table_uncertainty``: elicited uncertainty by dataset (n, missing, mean, sd, quartiles).
Every cell is a string, formatted here once, so the Markdown, LaTeX and CSV files hold the same text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ual.config import MAIN_TABLE_METHODS
from ual.variants import ual_at

__all__ = [
    "NOT_REPORTED",
    "main_table",
    "ablation_table",
    "clustering_table",
    "uncertainty_table",
    "write_table",
]

NOT_REPORTED = "not reported"
TASK_COLUMNS = {"alpacaeval": "AlpacaEval win rate (%)", "gsm8k": "GSM8K acc. (%)", "math": "MATH acc. (%)"}
# Beside every AlpacaEval win rate: the judge's share of preference to the second-shown output (50 = unbiased)
JUDGE_COLUMN = "AlpacaEval judge: 2nd-shown share (%)"
LOW_ENTROPY = ("gsm8k", "math")
METHOD_LABELS = {"sft": "SFT", "ls": "LS (constant eps)", "ual": "UAL", "ual_shuffled": "UAL, shuffled eps"}


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


def _judge_cell(metrics: pd.DataFrame, scenario: str, variant: str) -> str:
    """The judge's position bias (mean over seeds) and the pairs it left without a verdict, if any."""
    rows = metrics[(metrics.scenario == scenario) & (metrics.variant == variant) & (metrics.task == "alpacaeval")]
    if rows.empty or "position_bias" not in rows:
        return "n/a"
    bias = rows["position_bias"].dropna()
    text = _fmt(float(bias.mean()) if len(bias) else None, digits=1)
    unparsed = int(rows["n_unparsed"].fillna(0).sum()) if "n_unparsed" in rows else 0
    return f"{text}; {unparsed} unparsed" if unparsed else text


def _task_columns(tasks: list[str]) -> list[str]:
    """The result columns: one per task, and the judge's position bias right after the AlpacaEval win rate."""
    columns = []
    for task in tasks:
        columns += [TASK_COLUMNS[task], JUDGE_COLUMN] if task == "alpacaeval" else [TASK_COLUMNS[task]]
    return columns


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
            if "alpacaeval" in tasks:
                row[JUDGE_COLUMN] = _judge_cell(metrics, scenario, method)
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
        points["low-entropy avg."] = points[JUDGE_COLUMN] = relative[JUDGE_COLUMN] = ""
        relative["low-entropy avg."] = _fmt(sum(low_rel) / len(low_rel)) if low_rel else "n/a"
        paper = {"scenario": scenario, "row": "paper, UAL vs SFT (%)", "low-entropy avg.": NOT_REPORTED}
        for col in [*task_cols, JUDGE_COLUMN]:
            paper[col] = NOT_REPORTED
        for _, entry in reported[reported.scenario == scenario].iterrows():
            cell = f"{entry['value']:.2f}"
            if entry["task_group"].startswith("high_entropy") and TASK_COLUMNS["alpacaeval"] in paper:
                paper[TASK_COLUMNS["alpacaeval"]] = cell
            elif entry["task_group"].startswith("low_entropy"):
                paper["low-entropy avg."] = cell
        rows += [points, relative, paper]
    return pd.DataFrame(rows, columns=["scenario", "row", *_task_columns(tasks), "low-entropy avg."])


def ablation_table(
    metrics: pd.DataFrame, scenario: str, tasks: list[str], eps_max: float, sweep: list[float]
) -> pd.DataFrame:
    """The controls that test whether the per-sample assignment of epsilon matters, and the eps_max sweep."""
    variants = [("sft", "SFT (eps = 0)", "0"), ("ls", "LS (constant = mean UAL eps)", f"{eps_max:g}"),
                ("ual_shuffled", "UAL, shuffled eps", f"{eps_max:g}")]
    for value in sorted({eps_max, *sweep}):
        variants.append((ual_at(value, eps_max).name, f"UAL (eps_max = {value:g})", f"{value:g}"))
    rows = []
    for variant, label, eps in variants:
        if metrics[(metrics.scenario == scenario) & (metrics.variant == variant)].empty:
            continue
        row = {"variant": label, "eps_max": eps}
        for task in tasks:
            row[TASK_COLUMNS[task]] = _fmt(*_cell(metrics, scenario, variant, task))
        row[JUDGE_COLUMN] = _judge_cell(metrics, scenario, variant)
        row["paper"] = NOT_REPORTED
        rows.append(row)
    return pd.DataFrame(rows, columns=["variant", "eps_max", *_task_columns(tasks), "paper"])


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


def uncertainty_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Elicited uncertainty score (1..10) by dataset."""
    rows = []
    for dataset, group in scores.groupby("dataset", sort=True):
        values = group["score"].dropna().astype(float)
        row = {"dataset": dataset, "n": str(len(group)), "missing": str(int(group["score"].isna().sum()))}
        if len(values):
            q1, q2, q3 = values.quantile([0.25, 0.5, 0.75])
            row.update({"mean score": f"{values.mean():.2f}", "sd": f"{values.std(ddof=1) if len(values) > 1 else 0:.2f}",
                        "q25": f"{q1:.2f}", "median": f"{q2:.2f}", "q75": f"{q3:.2f}",
                        "mean u": f"{group['uncertainty'].dropna().mean():.3f}"})
        row["paper"] = NOT_REPORTED
        rows.append(row)
    return pd.DataFrame(rows)


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
