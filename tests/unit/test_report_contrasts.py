"""UAL's mechanism in the report (ual.report.contrasts): table_epsilon with its premise line, table_contrasts
(UAL minus each control, paired over references and over instructions), fig_contrasts, and their readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ual.report import collect, contrasts
from ual.epsilon import map_epsilon
from ual.smoothing import write_epsilon_file

LABEL = "GSM8K test gold solutions (MetaMath format)"
JUDGED = "AlpacaEval win rate (%), judged in both orders"


def identity(scenario: str | None, variant: str | None = None, seed: int | None = 0) -> dict:
    return {"experiment": "unit", "scenario": scenario, "variant": variant, "seed": seed}


def write_epsilon(root: Path, scenario: str, variant: str, method_mapping: str, uncertainty: list[float],
                  datasets: list[str], seed: int | None = None, mapping: str = "rank") -> Path:
    """An epsilon file and sidecar as python -m ual.smoothing writes them."""
    epsilon = map_epsilon(uncertainty, mapping, 0.0, 0.2, seed or 0, datasets, method_mapping)
    lines = [{"id": f"s{i}", "dataset": d, "uncertainty": u, "epsilon": e}
             for i, (d, u, e) in enumerate(zip(datasets, uncertainty, epsilon, strict=True))]
    path = root / f"{scenario}-{variant}-{seed}.jsonl"
    write_epsilon_file(path, lines, {"identity": identity(scenario, variant, seed), "mapping": method_mapping,
                                     "epsilon_mapping": mapping, "source": "entropy"})
    return path


DATASETS = ["alpaca"] * 4 + ["gsm8k"] * 4
ENTROPY = [0.50, 0.46, 0.44, 0.48, 0.30, 0.26, 0.28, 0.45]  # one math sample more uncertain than an alpaca one


def test_epsilon_table_quantiles_and_the_premise_line_computed_from_the_files(tmp_path):
    paths = [write_epsilon(tmp_path, "mixed", "ual", "per_sample", ENTROPY, DATASETS),
             write_epsilon(tmp_path, "mixed", "ls", "constant", ENTROPY, DATASETS),
             write_epsilon(tmp_path, "mixed", "ual_shuffled", "shuffled", ENTROPY, DATASETS, seed=1)]
    frame = collect.read_epsilon(paths)
    table = contrasts.epsilon_table(frame, high="alpaca", low="gsm8k")
    rows = table.set_index(["model", "dataset"])
    # rank quantiles of ENTROPY (n = 8): alpaca 7/7, 5/7, 3/7, 6/7 -> mean eps 0.15; gsm8k 2/7, 0, 1/7, 4/7 -> 0.05
    assert rows.loc[("UAL", "alpaca"), "mean"] == "0.1500" and rows.loc[("UAL", "gsm8k"), "mean"] == "0.0500"
    assert rows.loc[("UAL", "alpaca"), "median"] == f"{np.median([0.2, 0.2 * 5 / 7, 0.2 * 3 / 7, 0.2 * 6 / 7]):.4f}"
    assert rows.loc[("LS (constant eps)", "gsm8k"), "q05"] == rows.loc[("LS (constant eps)", "alpaca"), "q95"] == "0.1000"
    assert set(table["source"]) == {"entropy"} and set(table["mapping"]) == {"rank"} and set(table["n"]) == {"4"}
    assert table.attrs["note"] == (
        "Premise (more smoothing for the high-entropy dataset alpaca than for gsm8k): follows (mixed: mean UAL "
        "eps 0.1500 on alpaca vs 0.0500 on gsm8k (more)).")


def test_the_premise_line_says_so_when_the_direction_is_inverted_or_untestable(tmp_path):
    inverted = [1.0 - u for u in ENTROPY]
    frame = collect.read_epsilon([write_epsilon(tmp_path, "mixed", "ual", "per_sample", inverted, DATASETS)])
    assert "does not follow (mixed: mean UAL eps" in contrasts.premise_line(frame, "alpaca", "gsm8k")
    alone = collect.read_epsilon([write_epsilon(tmp_path, "high", "ual", "per_sample", ENTROPY[:4], DATASETS[:4])])
    assert "not testable" in contrasts.premise_line(alone, "alpaca", "gsm8k")


def interval(value: float, half: float) -> dict:
    return {"value": value, "ci_low": value - half, "ci_high": value + half}


def write_calibration(root: Path, differences: dict[str, float]) -> Path:
    """calibration.json with UAL minus each control (``control -> NLL difference``) as the analysis writes it."""
    entry = {"source": "dir", "tasks": {"gsm8k": {"n_samples": 24, "n_tokens": 900, "metrics": {}}}}
    body = {"identity": identity("mixed", None, 0), "references": {"gsm8k": {"label": LABEL, "n_samples": 24}},
            "models": {name: entry for name in ("sft", "ls", "ual")},
            "differences": {control: {"ual": {"gsm8k": {m: interval(value, 0.01 if m == "nll" else 0.001)
                                                         for m in ("nll", "entropy", "ece", "brier")}}}
                            for control, value in differences.items()}}
    path = root / "calibration.json"
    path.write_text(json.dumps(body))
    return path


def write_judged(root: Path, variant: str, preferences: list[float | None], orders: str = "both") -> Path:
    """An AlpacaEval metrics file and its annotations beside it (ual.tasks.alpacaeval)."""
    path = root / f"alpacaeval-{variant}.json"
    path.write_text(json.dumps({"task": "alpacaeval", "metric": "win_rate", "win_rate": 50.0, "judge_orders": orders,
                                "identity": identity("mixed", variant, 0)}))
    rows = [{"instruction": f"i{k}", "preference": p} for k, p in enumerate(preferences)]
    path.with_suffix(".annotations.json").write_text(json.dumps(rows))
    return path


def test_contrast_table_pairs_ual_with_its_controls_over_references_and_instructions(tmp_path):
    calibration = collect.read_calibration([write_calibration(tmp_path, {"ls": -0.03, "ual_shuffled": 0.002})])
    ual = [2.0, 1.0, 1.5, None, 2.0, 1.0]
    paths = [write_judged(tmp_path, "ual", ual),
             write_judged(tmp_path, "ls", [p - 0.5 if p else 1.0 for p in ual]),  # UAL preferred by 0.5 each
             write_judged(tmp_path, "ual_shuffled", ual)]  # identical: exactly 0
    preferences = collect.read_preferences(paths)
    table = contrasts.contrast_table(calibration, preferences, ["mixed"], resamples=200, seed=0)
    rows = table.set_index(["task", "comparison"])
    taught = rows.loc[(f"{LABEL} (teacher-forced)", "UAL - LS (constant eps)")]
    assert taught["NLL (nats/token)"] == "-0.0300 [-0.0400, -0.0200]" and taught["n"] == "24"
    assert taught["win rate (points)"] == "-"
    judged = rows.loc[(JUDGED, "UAL - LS (constant eps)")]
    assert judged["win rate (points)"] == "+50.0 [+50.0, +50.0]" and judged["n"] == "5"  # the unjudged one out
    same = rows.loc[(JUDGED, "UAL - UAL, shuffled eps")]
    assert same["win rate (points)"] == "+0.0 [+0.0, +0.0]"
    assert (JUDGED, "UAL - UAL, per-dataset mean eps") not in rows.index
    note = table.attrs["note"]
    assert "Resolved (95 % interval excludes 0): 7 of 8 teacher-forced differences" in note
    assert "median 95 % interval width of the NLL differences 0.0200" in note and "1 of 2 resolved" in note


def test_win_rate_difference_by_hand_and_readers_refuse_what_they_cannot_pair(tmp_path):
    ual, ls = [2.0, 2.0, 1.0, 1.5], [1.0, 2.0, 1.0, 1.0]
    preferences = collect.read_preferences([write_judged(tmp_path, "ual", ual), write_judged(tmp_path, "ls", ls)])
    result = contrasts.win_rate_difference(preferences, "mixed", "alpacaeval", "ual", "ls", 500, 0)
    assert result["value"] == pytest.approx(100 * (1.0 + 0 + 0 + 0.5) / 4) and result["n"] == 4
    assert result["ci_low"] < result["value"] < result["ci_high"]
    random_order = write_judged(tmp_path, "ual_dataset", ual, orders="random")
    assert collect.read_preferences([random_order]).empty  # one random order per pair: not paired
    lost = write_judged(tmp_path, "sft", ual)
    lost.with_suffix(".annotations.json").unlink()
    with pytest.raises(ValueError, match="judged in both orders but its annotations file .* is missing"):
        collect.read_preferences([lost])


def test_contrast_figure_draws_one_interval_per_task_and_control(tmp_path):
    from ual.report import figures

    calibration = collect.read_calibration([write_calibration(tmp_path, {"ls": -0.03, "ual_dataset": 0.01})])
    (ax,) = figures.contrast_figure(calibration, "mixed").axes
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert labels == [f"{LABEL}: UAL - UAL, per-dataset mean eps", f"{LABEL}: UAL - LS (constant eps)"]
    with pytest.raises(ValueError, match="no paired UAL - control difference .* high scenario"):
        figures.contrast_figure(calibration, "high")
