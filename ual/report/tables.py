"""Paper tables from tidy result frames: pure builders, and one writer for Markdown, LaTeX and CSV.

Tables (``paper_tables/<exp>/<name>.{md,tex,csv}`` plus ``<name>.provenance.json``):
- ``table_main``: scenario x method (sft, ls, ual): AlpacaEval win rate +- SE with the judge's position bias
  beside it (``JUDGE_COLUMN``: % of preference to the second-shown output, 50 = unbiased, and the pairs the
  judge left without a verdict), GSM8K and MATH accuracy
  (+- half the bootstrap 95 % interval), then per scenario UAL - SFT in points and relative %, and the paper's
  reported numbers beside the mixed scenario (10.62 % high-entropy, 1.81 % low-entropy); "not reported" elsewhere.
- ``table_ablation``: the ablation scenario: sft, ls, ual_shuffled, ual_dataset and UAL at every eps_max of
  the sweep.
- ``table_crosscheck``: GSM8K accuracy of the same generations under four scorers, scenario x method: ual's
  (the reported number: MetaMath's rules + the thousands-group deviation), MetaMath's rules verbatim, and
  lm-eval's stock gsm8k strict-match and flexible-extract (``ual.tasks.gsm8k``, ``ual.tasks.lmeval_gsm8k``).
  A table of its own, not columns of ``table_main``: it concerns one task, and it is about the protocol, not
  the methods, so it reads best with the scorers side by side.
- ``table_clustering``: silhouette (cosine), Davies-Bouldin, Calinski-Harabasz per scenario, model and layer.
- ``table_calibration``: scenario x task type x model (base and every trained variant): teacher-forced NLL,
  perplexity, entropy, ECE, Brier of held-out references with 95 % intervals, and the paired differences
  model - SFT and model - base with paired bootstrap intervals (``ual.analysis.stage``).
- ``table_uncertainty``: elicited uncertainty by dataset and source (verbalized, entropy: n, missing, mean,
  sd, quartiles) and, where both sources scored a dataset, their Spearman rank correlation.
- ``table_epsilon`` and ``table_contrasts`` (the epsilon each method trains with; UAL minus its controls,
  paired) are built in ``ual.report.contrasts`` and written here.
Columns and rows come from the registries: a task's column is its ``label`` (``ual.tasks``), its
``low_entropy`` puts it into the low-entropy average and a ``judged`` task gets the judge column beside it; a
method's row is its ``label`` (``ual.methods``; ``ablation_label`` in table_ablation, which lists every method
with a reference line, then the swept one at each eps_max).
Every cell is a string, formatted here once, so the Markdown, LaTeX and CSV files hold the same text; the
CSV has, besides, the columns a table lists in ``attrs["csv_only"]`` (each run's value and interval).

Seeds (``_cell``): with one seed, a cell is the run's value +- its own error (AlpacaEval: alpaca_eval's
standard error; accuracies: half the bootstrap 95 % interval); with several seeds, the mean over seeds +- the
standard error of that mean (sample sd over seeds / sqrt(n seeds)), which is what varies between reruns of the
whole grid. ``SEEDS_NOTE`` says so under the table (``attrs["note"]``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ual import methods
from ual.methods import METHODS
from ual.provenance import sidecar_path
from ual.report.collect import REPORTED_SCORER
from ual.tasks import get_task
from ual.tasks.gsm8k import METAMATH_VERBATIM
from ual.tasks.lmeval_gsm8k import FILTERS
from ual.variants import Variant, sweep_label, ual_at

__all__ = [
    "NOT_REPORTED",
    "main_table",
    "ablation_table",
    "crosscheck_table",
    "clustering_table",
    "calibration_table",
    "uncertainty_table",
    "variant_label",
    "write_table",
]

NOT_REPORTED = "not reported"
# Beside the judged task's win rate (AlpacaEval): the judge's share of preference to the second-shown output
JUDGE_COLUMN = "AlpacaEval judge: 2nd-shown share (%)"
JUDGE_NOTE = (
    "AlpacaEval judge: 2nd-shown share = the share of the judge's preference that went to the output shown "
    "second (mean over seeds): 50 for a judge that reads only content, 100 for one that always picks the "
    "second; 'k unparsed' = pairs left without a verdict (not counted in the win rate)."
)
PER_RUN = "per run"
LOW_ENTROPY_COLUMN = "low-entropy avg."
BASE, BASE_LABEL = "base", "base model (untrained)"  # the untrained model of the calibration analysis


def _label(task: str) -> str:
    """A task's result column (``Task.label``)."""
    return get_task(task).label


def _judged_task(tasks: list[str]) -> str | None:
    """The task scored by a pairwise judge, whose position bias gets a column of its own (at most one)."""
    judged = [task for task in tasks if get_task(task).judged]
    if len(judged) > 1:
        raise ValueError(f"the tables show one judged task's position bias; got {', '.join(judged)}")
    return judged[0] if judged else None


def _fmt(value: float | None, error: float | None = None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    if error is not None and not (isinstance(error, float) and math.isnan(error)):
        text += f" ± {error:.{digits}f}"
    return text


SEEDS_NOTE = (
    "Cells: with one seed, the run's value ± its own error (AlpacaEval: standard error; accuracies: half the "
    "bootstrap 95 % interval); with several seeds, the mean over seeds ± the standard error of that mean "
    "(sd over seeds / sqrt(number of seeds)). The CSV adds each run's value and interval (columns 'per run')."
)


def _runs(metrics: pd.DataFrame, scenario: str, variant: str, task: str) -> pd.DataFrame:
    return metrics[(metrics.scenario == scenario) & (metrics.variant == variant) & (metrics.task == task)]


def _cell(metrics: pd.DataFrame, scenario: str, variant: str, task: str) -> tuple[float | None, float | None]:
    """(value, error) in percent: one seed, the run's value and error; several, the mean over seeds and its
    standard error (sd with ddof=1 / sqrt(n)); (None, None) when not run."""
    rows = _runs(metrics, scenario, variant, task)
    if rows.empty:
        return None, None
    if len(rows) == 1:
        error = rows["error"].iloc[0]
        return float(rows["value"].iloc[0]), (None if pd.isna(error) else float(error))
    values = rows["value"].astype(float)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def _per_run(metrics: pd.DataFrame, scenario: str, variant: str, task: str) -> str:
    """Each run of a cell, by seed: ``seed 0: 45.00 ± 1.20 (ci95/2); seed 1: ...`` (the CSV's 'per run')."""
    rows = _runs(metrics, scenario, variant, task).sort_values("seed")
    return "; ".join(
        f"seed {row.seed}: {_fmt(row.value, row.error)}" + (f" ({row.error_kind})" if row.error_kind else "")
        for row in rows.itertuples()
    )


def _with_runs(table: pd.DataFrame, per_run: list[str]) -> pd.DataFrame:
    """Mark the per-run columns as CSV-only and put the seeds note under the table."""
    table.attrs.update(csv_only=per_run, note=SEEDS_NOTE)
    return table


def _judge_cell(metrics: pd.DataFrame, scenario: str, variant: str, task: str | None) -> str:
    """The judge's position bias on ``task`` (mean over seeds) and the pairs it left without a verdict."""
    rows = _runs(metrics, scenario, variant, task)
    if rows.empty or "position_bias" not in rows:
        return "n/a"
    bias = rows["position_bias"].dropna()
    text = _fmt(float(bias.mean()) if len(bias) else None, digits=1)
    unparsed = int(rows["n_unparsed"].fillna(0).sum()) if "n_unparsed" in rows else 0
    return f"{text}; {unparsed} unparsed" if unparsed else text


def _with_judge_note(table: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Say under the table what the judge column means, when there is one."""
    if _judged_task(tasks) is not None:
        table.attrs["note"] = f"{table.attrs.get('note', '')} {JUDGE_NOTE}".strip()
    return table


def _task_columns(tasks: list[str]) -> list[str]:
    """The result columns: one per task, and the judge's position bias right after the judged task's."""
    judged = _judged_task(tasks)
    columns = []
    for task in tasks:
        columns += [_label(task), JUDGE_COLUMN] if task == judged else [_label(task)]
    return columns


def _relative(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return 100.0 * (new - old) / old


def _method_rows(metrics: pd.DataFrame, scenario: str, tasks: list[str], run_cols: list[str]) -> list[dict]:
    """table_main's row of each main method in ``scenario``: a cell per task, its runs, the judge's bias."""
    judged, rows = _judged_task(tasks), []
    for method in methods.MAIN_TABLE_METHODS:
        row = {"scenario": scenario, "row": METHODS[method].label}
        for task, run_col in zip(tasks, run_cols, strict=True):
            row[_label(task)] = _fmt(*_cell(metrics, scenario, method, task))
            row[run_col] = _per_run(metrics, scenario, method, task)
        if judged is not None:
            row[JUDGE_COLUMN] = _judge_cell(metrics, scenario, method, judged)
        row[LOW_ENTROPY_COLUMN] = ""
        rows.append(row)
    return rows


def _improvement_rows(metrics: pd.DataFrame, scenario: str, tasks: list[str]) -> list[dict]:
    """UAL - SFT in points and in relative %, with the low-entropy tasks' mean relative gain."""
    points = {"scenario": scenario, "row": "UAL - SFT (points)"}
    relative = {"scenario": scenario, "row": "UAL - SFT (relative %)"}
    rel_values = {}
    for task in tasks:
        ual, sft = _cell(metrics, scenario, "ual", task)[0], _cell(metrics, scenario, "sft", task)[0]
        points[_label(task)] = _fmt(None if ual is None or sft is None else ual - sft)
        rel_values[task] = _relative(ual, sft)
        relative[_label(task)] = _fmt(rel_values[task])
    low_rel = [rel_values[t] for t in tasks if get_task(t).low_entropy and rel_values[t] is not None]
    points[LOW_ENTROPY_COLUMN] = points[JUDGE_COLUMN] = relative[JUDGE_COLUMN] = ""
    relative[LOW_ENTROPY_COLUMN] = _fmt(sum(low_rel) / len(low_rel)) if low_rel else "n/a"
    return [points, relative]


def _paper_row(reported: pd.DataFrame, scenario: str, tasks: list[str]) -> dict:
    """The paper's reported gains: high-entropy beside each open-ended task, low-entropy as the average."""
    paper = {"scenario": scenario, "row": "paper, UAL vs SFT (%)", LOW_ENTROPY_COLUMN: NOT_REPORTED}
    for col in [*map(_label, tasks), JUDGE_COLUMN]:
        paper[col] = NOT_REPORTED
    for _, entry in reported[reported.scenario == scenario].iterrows():
        cell = f"{entry['value']:.2f}"
        if entry["task_group"].startswith("high_entropy"):
            paper |= {_label(task): cell for task in tasks if not get_task(task).low_entropy}
        elif entry["task_group"].startswith("low_entropy"):
            paper[LOW_ENTROPY_COLUMN] = cell
    return paper


def main_table(metrics: pd.DataFrame, reported: pd.DataFrame, scenarios: list[str], tasks: list[str]) -> pd.DataFrame:
    """Scenario x method results, UAL - SFT (points and relative), and the paper's headline numbers."""
    run_cols = [f"{_label(task)} {PER_RUN}" for task in tasks]
    rows: list[dict[str, str]] = []
    for scenario in scenarios:
        rows += _method_rows(metrics, scenario, tasks, run_cols)
        rows += _improvement_rows(metrics, scenario, tasks)
        rows.append(_paper_row(reported, scenario, tasks))
    columns = ["scenario", "row", *_task_columns(tasks), LOW_ENTROPY_COLUMN, *run_cols]
    table = pd.DataFrame(rows, columns=columns)
    table = table.fillna("")
    return _with_judge_note(_with_runs(table, run_cols), tasks)


def ablation_table(
    metrics: pd.DataFrame, scenario: str, tasks: list[str], eps_max: float, sweep: list[float]
) -> pd.DataFrame:
    """The controls that test whether the per-sample assignment of epsilon matters (every method with a
    reference line, ``ual.methods``), and the swept method (UAL) at every eps_max of the sweep."""
    variants = [(name, method.ablation_label, f"{eps_max:g}" if method.uses_eps_max else "0")
                for name, method in METHODS.items() if method.reference_line]
    for value in sorted({eps_max, *sweep}):
        variants.append((ual_at(value, eps_max).name, sweep_label(value), f"{value:g}"))
    judged, rows = _judged_task(tasks), []
    for variant, label, eps in variants:
        if metrics[(metrics.scenario == scenario) & (metrics.variant == variant)].empty:
            continue
        row = {"variant": label, "eps_max": eps}
        for task in tasks:
            row[_label(task)] = _fmt(*_cell(metrics, scenario, variant, task))
            row[f"{_label(task)} {PER_RUN}"] = _per_run(metrics, scenario, variant, task)
        row[JUDGE_COLUMN] = _judge_cell(metrics, scenario, variant, judged)
        row["paper"] = NOT_REPORTED
        rows.append(row)
    run_cols = [f"{_label(t)} {PER_RUN}" for t in tasks]
    columns = ["variant", "eps_max", *_task_columns(tasks), "paper", *run_cols]
    table = pd.DataFrame(rows, columns=columns)
    return _with_judge_note(_with_runs(table, run_cols), tasks)


CROSSCHECK_COLUMNS = {
    REPORTED_SCORER: "ual: MetaMath + thousands groups (reported)",
    METAMATH_VERBATIM: "MetaMath verbatim",
    **{scorer: f"lm-eval {name}" for name, scorer in FILTERS.items()},
}
CROSSCHECK_NOTE = (
    "Scorers of the same GSM8K generations: ual's (table_main's number: the text after the last "
    "'The answer is: ', first number, rounded; '1,450,000' read whole); MetaMath's eval_gsm8k.py verbatim "
    "(reads 1,450,000 as 1450); lm-eval's stock gsm8k task, strict-match (needs '#### N') and "
    "flexible-extract (the last number anywhere, compared as a string)."
)


def crosscheck_table(crosscheck: pd.DataFrame, scenarios: list[str]) -> pd.DataFrame:
    """GSM8K accuracy (%) by scorer for every scenario and main method (``collect.read_crosscheck``)."""
    run_cols = [f"{label} {PER_RUN}" for label in CROSSCHECK_COLUMNS.values()]
    rows = []
    for scenario in scenarios:
        for method in methods.MAIN_TABLE_METHODS:
            runs = _runs(crosscheck, scenario, method, REPORTED_SCORER)
            if runs.empty:
                continue
            row = {"scenario": scenario, "row": METHODS[method].label, "items": str(int(runs["n"].iloc[0]))}
            for (scorer, label), run_col in zip(CROSSCHECK_COLUMNS.items(), run_cols, strict=True):
                row[label] = _fmt(*_cell(crosscheck, scenario, method, scorer))
                row[run_col] = _per_run(crosscheck, scenario, method, scorer)
            rows.append(row)
    table = pd.DataFrame(rows, columns=["scenario", "row", "items", *CROSSCHECK_COLUMNS.values(), *run_cols])
    table = _with_runs(table, run_cols)
    table.attrs["note"] = f"{CROSSCHECK_NOTE} {SEEDS_NOTE}"
    return table


def clustering_table(clustering: pd.DataFrame) -> pd.DataFrame:
    """Clustering quality of hidden states by target token (mean over seeds; interval of the first seed)."""
    names = {"silhouette_cosine": "silhouette (cosine, higher better)",
             "davies_bouldin": "Davies-Bouldin (lower better)",
             "calinski_harabasz": "Calinski-Harabasz (higher better)"}
    rows = []
    for (scenario, model, layer), group in clustering.groupby(["scenario", "model", "layer"], sort=False):
        row = {"scenario": scenario, "model": _model_label(model), "layer": layer}
        for metric, label in names.items():
            part = group[group.metric == metric]
            if part.empty:
                row[label] = "n/a"
                continue
            first = part.iloc[0]
            interval = (f" [{first['ci_low']:.3f}, {first['ci_high']:.3f}]"
                        if first["ci_low"] is not None and not pd.isna(first["ci_low"]) else "")
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
    return BASE_LABEL if name == BASE else Variant.parse(name).label


def _model_label(name: str) -> str:
    """A clustered model's label: the base model's or a method's, else its name."""
    return BASE_LABEL if name == BASE else METHODS[name].label if name in METHODS else name


def _model_order(names: set[str]) -> list[str]:
    def key(name: str) -> tuple[int, float, str]:
        order = [BASE, *METHODS]
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


CALIBRATION_NOTE = (
    "Intervals: 95 % percentile intervals of a bootstrap over references; a difference is paired (both models "
    "on the same resampled references and tokens), so it can be resolved where the two models' own intervals "
    "overlap. ECE's own interval may lie above its value: resampling adds noise within the bins, which ECE (a "
    "sum of absolute gaps) counts as miscalibration; compare models by the paired ECE difference."
)


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
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["note"] = CALIBRATION_NOTE
    return table


SOURCES = {"verbalized": "verbalized (score 1-10)", "entropy": "entropy (nats)"}
RHO = "Spearman rho, verbalized vs entropy u"


def _rank_correlation(scores: pd.DataFrame, dataset: str) -> str:
    """Spearman rho of the two sources' uncertainty over the samples both scored (``n/a`` otherwise)."""
    from scipy.stats import spearmanr

    part = scores[(scores.dataset == dataset) & scores["uncertainty"].notna()]
    wide = part.pivot_table(index="id", columns="source", values="uncertainty", aggfunc="first")
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
    sources = scores["source"] if "source" in scores.columns else pd.Series("verbalized", index=scores.index)
    scores = scores.assign(source=sources.fillna("verbalized"))
    unknown = sorted(set(scores["source"]) - set(SOURCES))
    if unknown:
        raise ValueError(f"score records of unknown source(s) {unknown}; known: {sorted(SOURCES)}")
    rows = []
    for dataset, by_dataset in scores.groupby("dataset", sort=True):
        rho = _rank_correlation(scores, dataset)
        for source in (m for m in SOURCES if m in set(by_dataset["source"])):
            group = by_dataset[by_dataset.source == source]
            values = group["score"].dropna().astype(float)
            row = {"dataset": dataset, "source": SOURCES[source], "n": str(len(group)),
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
    """Write ``name``.md / .tex / .csv (the same cells; the CSV also has the ``attrs["csv_only"]`` columns,
    Markdown and LaTeX the ``attrs["note"]`` under the table) and ``name``.provenance.json; the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full, table = table, table.drop(columns=table.attrs.get("csv_only", []))
    note = f"{full.attrs['note']}\n\n" if full.attrs.get("note") else ""
    line = (f"Provenance: experiment {provenance['experiment']}; model {provenance['model']}; elicitor "
            f"{provenance['elicitor']}; judge {provenance['judge']}; seeds {provenance['seeds']}; "
            f"git {', '.join(s[:12] for s in provenance['git_sha']) or 'unknown'}; generated by `python -m ual.report`.")
    body = table.to_markdown(index=False) if not table.empty else "_no results_"
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("md", "tex", "csv")}
    paths["md"].write_text(f"# {title}\n\n{body}\n\n{note}{line}\n")
    header = " & ".join(_latex_escape(str(c)) for c in table.columns)
    lines = [" & ".join(_latex_escape(str(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    tex = [f"% {line}", r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(title)}}}",
           rf"\begin{{tabular}}{{{'l' * len(table.columns)}}}", r"\toprule", header + r" \\", r"\midrule",
           *lines, r"\bottomrule", r"\end{tabular}",
           *([rf"\par\footnotesize {_latex_escape(full.attrs['note'])}"] if note else []), r"\end{table}"]
    paths["tex"].write_text("\n".join(tex) + "\n")
    full.to_csv(paths["csv"], index=False)
    sidecar = sidecar_path(out_dir / name, "provenance")
    sidecar.write_text(json.dumps({"title": title, **provenance}, indent=2, sort_keys=True) + "\n")
    return [*paths.values(), sidecar]
