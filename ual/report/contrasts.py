"""UAL's mechanism in the tables: the epsilon it trains with, and UAL against its controls, paired.

- ``table_epsilon``: per scenario, method (variant) and dataset, the distribution of the epsilon it trains
  with (n, mean, q05, q25, median, q75, q95; ``ual.stats.describe``), the uncertainty source and mapping UAL's
  eps came from, and one line under it, computed from the data (``premise_line``): whether UAL gives more
  smoothing to the high-entropy dataset (``data.high``) than to the low-entropy one (``data.low``), the
  paper's premise, in every scenario that trains on both.
- ``table_contrasts``: the paper's questions, each a paired difference method - control for every pair of
  ``ual.methods.CONTROL_PAIRS`` (UAL - LS, UAL - shuffled, UAL - per-dataset): per scenario and task type the
  teacher-forced NLL, entropy, ECE and Brier differences over the same held-out references and tokens (the
  analysis stage's paired bootstrap, ``ual.analysis.stage.differences``), and for a task judged in both
  orders (AlpacaEval) the win-rate difference in points, paired over instructions (per instruction the
  method's preference against the reference output minus the control's against the same reference output,
  x100; a bootstrap over instructions, ``ual.stats.paired_mean_difference``). The note under it counts, from
  the data, the differences whose 95 % interval excludes 0, and gives the median interval width.

Inputs: the tidy frames of ``ual.report.collect`` (``read_epsilon``, ``read_calibration``,
``read_preferences``). Outputs: DataFrames of strings for ``ual.report.tables.write_table``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ual.methods import CONTROL_PAIRS, METHODS, swept_method
from ual.report.tables import variant_label
from ual.stats import describe, paired_mean_difference
from ual.tasks import get_task
from ual.variants import Variant

__all__ = ["CONTRAST_METRICS", "contrast_table", "epsilon_table", "premise_line"]

EPSILON_QUANTILES = {"q05": "q05", "q25": "q25", "q50": "median", "q75": "q75", "q95": "q95"}
CONTRAST_METRICS = {"nll": "NLL (nats/token)", "entropy": "entropy (nats)", "ece": "ECE", "brier": "Brier"}
WIN_RATE = "win rate (points)"
NOT_JUDGED = "-"


def _pair_label(method: str, control: str) -> str:
    return f"{METHODS[method].label} - {METHODS[control].label}"


def epsilon_table(epsilon: pd.DataFrame, high: str, low: str) -> pd.DataFrame:
    """Epsilon by scenario, variant and dataset (the first seed of a seeded method), premise line in the note."""
    columns = ["scenario", "model", "dataset", "source", "mapping", "n", "mean", *EPSILON_QUANTILES.values()]
    rows = []
    scenarios = list(dict.fromkeys(epsilon["scenario"]))
    pairs = epsilon[["scenario", "variant"]].drop_duplicates().itertuples(index=False)
    for scenario, variant in sorted(pairs, key=lambda p: (scenarios.index(p[0]), _variant_key(p[1]))):
        part = epsilon[(epsilon.scenario == scenario) & (epsilon.variant == variant)]
        first = part[part.seed.isna()] if part.seed.isna().any() else part[part.seed == part.seed.min()]
        for dataset, group in first.groupby("dataset", sort=True):
            stats = describe(group["epsilon"].tolist())
            rows.append({"scenario": scenario, "model": variant_label(variant), "dataset": dataset,
                         "source": str(group["source"].iloc[0]), "mapping": str(group["epsilon_mapping"].iloc[0]),
                         "n": str(stats["n"]), "mean": f"{stats['mean']:.4f}",
                         **{label: f"{stats[key]:.4f}" for key, label in EPSILON_QUANTILES.items()}})
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["note"] = premise_line(epsilon, high, low)
    return table


def _variant_key(name: str) -> tuple[int, float]:
    """Methods in their row order (``ual.methods.METHODS``), a sweep point after its method by eps_max."""
    variant = Variant.parse(name)
    return list(METHODS).index(variant.method), variant.eps_max or 0.0


def premise_line(epsilon: pd.DataFrame, high: str, low: str) -> str:
    """One line: does UAL (variant ``ual``, at the experiment's eps_max) give the high-entropy dataset more mean eps than the low one, in
    each scenario that trains on both? Computed from the epsilon files."""
    ual = epsilon[epsilon.variant == swept_method().name]  # UAL at the experiment's eps_max
    verdicts = []
    for scenario, part in ual.groupby("scenario", sort=False):
        means = part.groupby("dataset")["epsilon"].mean()
        if high in means and low in means:
            relation = "more" if means[high] > means[low] else "equal" if means[high] == means[low] else "less"
            verdicts.append((scenario, relation, means[high], means[low]))
    if not verdicts:
        return (f"Premise (more smoothing for the high-entropy dataset {high} than for {low}): not testable, no "
                "scenario trains UAL on both.")
    follows = all(relation == "more" for _, relation, _, _ in verdicts)
    detail = "; ".join(f"{scenario}: mean UAL eps {h:.4f} on {high} vs {l:.4f} on {low} ({relation})"
                       for scenario, relation, h, l in verdicts)
    return (f"Premise (more smoothing for the high-entropy dataset {high} than for {low}): "
            f"{'follows' if follows else 'does not follow'} ({detail}).")


def _interval(value: float, low: float, high: float, digits: int) -> str:
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _calibration_rows(calibration: pd.DataFrame, scenario: str) -> list[dict]:
    part = calibration[calibration.scenario == scenario]
    first_seed = part.seed.min()
    rows = []
    for task in dict.fromkeys(part["task"]):
        of_task = part[(part.task == task) & (part.seed == first_seed)]
        for method, control in CONTROL_PAIRS:
            cells = of_task[(of_task.model == method) & (of_task.quantity == f"minus_{control}")]
            if cells.empty:
                continue
            row = {"scenario": scenario, "task": f"{of_task['task_label'].iloc[0]} (teacher-forced)",
                   "comparison": _pair_label(method, control), "n": str(int(cells["n_samples"].iloc[0])),
                   WIN_RATE: NOT_JUDGED}
            for metric, label in CONTRAST_METRICS.items():
                cell = cells[cells.metric == metric]
                row[label] = (_interval(*cell[["value", "ci_low", "ci_high"]].iloc[0], digits=4)
                              if len(cell) else "n/a")
            rows.append(row)
    return rows


def win_rate_difference(preferences: pd.DataFrame, scenario: str, task: str, method: str, control: str,
                        resamples: int, seed: int) -> dict | None:
    """``method - control`` win rate in points, paired over the instructions both have a verdict on (first
    seed), with its bootstrap interval and ``n``; None when either was not judged in both orders."""
    part = preferences[(preferences.scenario == scenario) & (preferences.task == task)]
    if part.empty:
        return None
    part = part[part.seed == part.seed.min()]
    by_variant = {name: group.set_index("instruction")["preference"] for name, group in part.groupby("variant")}
    if method not in by_variant or control not in by_variant:
        return None
    paired = pd.concat({"method": by_variant[method], "control": by_variant[control]}, axis=1, join="inner")
    paired = paired.dropna()
    if paired.empty:
        return None
    return paired_mean_difference((paired["method"] * 100).tolist(), (paired["control"] * 100).tolist(),
                                  resamples, seed)


def _win_rates(preferences: pd.DataFrame, scenario: str, resamples: int, seed: int) -> list[tuple]:
    """``(task, method, control, win_rate_difference)`` of every pair judged in both orders in ``scenario``."""
    tasks = dict.fromkeys(preferences.loc[preferences.scenario == scenario, "task"])
    found = [(task, method, control, win_rate_difference(preferences, scenario, task, method, control,
                                                         resamples, seed))
             for task in tasks for method, control in CONTROL_PAIRS]
    return [entry for entry in found if entry[-1] is not None]


def _win_rate_row(scenario: str, task: str, method: str, control: str, result: dict) -> dict:
    return {"scenario": scenario, "task": f"{get_task(task).label}, judged in both orders",
            "comparison": _pair_label(method, control), "n": str(result["n"]),
            **{label: NOT_JUDGED for label in CONTRAST_METRICS.values()},
            WIN_RATE: _interval(result["value"], result["ci_low"], result["ci_high"], digits=1)}


def contrast_table(calibration: pd.DataFrame, preferences: pd.DataFrame, scenarios: Sequence[str],
                   resamples: int, seed: int) -> pd.DataFrame:
    """UAL minus each control, paired, per scenario and task type (module docstring); a note from the data."""
    columns = ["scenario", "task", "comparison", "n", *CONTRAST_METRICS.values(), WIN_RATE]
    rows, wins = [], []
    for scenario in scenarios:
        judged = _win_rates(preferences, scenario, resamples, seed)
        rows += _calibration_rows(calibration, scenario) + [_win_rate_row(scenario, *entry) for entry in judged]
        wins += [entry[-1] for entry in judged]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["note"] = _contrast_note(calibration, scenarios, wins)
    return table


def _contrast_note(calibration: pd.DataFrame, scenarios: Sequence[str], wins: list[dict]) -> str:
    """How many paired differences are resolved (95 % interval excludes 0), and the median widths."""
    pairs = [f"minus_{control}" for _, control in CONTROL_PAIRS]
    methods = {method for method, _ in CONTROL_PAIRS}
    cells = calibration[calibration.quantity.isin(pairs) & calibration.model.isin(methods)
                        & calibration.metric.isin(list(CONTRAST_METRICS)) & calibration.scenario.isin(scenarios)]
    cells = cells[cells.seed == cells.seed.min()] if len(cells) else cells
    resolved = cells[(cells.ci_low > 0) | (cells.ci_high < 0)]
    nll = cells[cells.metric == "nll"]
    width = float((nll.ci_high - nll.ci_low).median()) if len(nll) else math.nan
    win_text = (f"; win-rate differences: {sum((w['ci_low'] > 0) or (w['ci_high'] < 0) for w in wins)} of "
                f"{len(wins)} resolved, median 95 % interval width "
                f"{pd.Series([w['ci_high'] - w['ci_low'] for w in wins]).median():.1f} points" if wins else "")
    return (f"Paired differences method - control (positive: the method's value is higher; lower NLL is better). "
            f"Resolved (95 % interval excludes 0): {len(resolved)} of {len(cells)} teacher-forced differences; "
            f"median 95 % interval width of the NLL differences {width:.4f} nats/token{win_text}. "
            "Intervals: paired bootstrap over references (teacher-forced) or instructions (win rate), first "
            "seed; they hold the trained models fixed, so training noise between seeds is not in them.")
