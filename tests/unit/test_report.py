"""Table builder on hand-written result files: exact cells, improvement arithmetic, "not reported" cells.

Run: python -m pytest tests/unit/test_report.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ual.report import collect, tables
from ual.report import main as report_main

REPO = Path(__file__).resolve().parents[2]


def identity(scenario: str | None, variant: str | None = None, seed: int | None = 0) -> dict:
    """The ``identity`` record of a result (ual.identity), as the stages write it."""
    return {"identity": {"experiment": "unit", "scenario": scenario, "variant": variant, "seed": seed}}


def write_metric(root: Path, scenario: str, variant: str, task: str, value: float, error: float | None = None,
                 seed: int = 0):
    # a flat folder: the reader takes scenario, variant and seed from the identity, never from the path
    path = root / f"{task}-{scenario}-{variant}-{seed}.json"
    if task == "alpacaeval":
        body = {"metric": "win_rate", "win_rate": value, "standard_error": error}
    else:
        body = {"metric": "accuracy", "accuracy": value, "ci_low": value - (error or 0), "ci_high": value + (error or 0)}
    body |= {"task": task, "n": 10, "provenance": {"git_sha": "abc123def4567890", "versions": {"torch": "2.13.0"}},
             **identity(scenario, variant, seed)}
    path.write_text(json.dumps(body))
    return path


@pytest.fixture()
def results(tmp_path):
    files = []
    # AlpacaEval win rates are in percent (alpaca_eval's unit); accuracies are fractions.
    values = {
        ("mixed", "sft"): (40.0, 0.50, 0.10),
        ("mixed", "ls"): (42.0, 0.52, 0.10),
        ("mixed", "ual"): (44.0, 0.55, 0.12),
        ("mixed", "ual_shuffled"): (41.0, 0.51, 0.09),
        ("mixed", "ual_epsmax0.5"): (43.0, 0.40, 0.08),
        ("high", "sft"): (30.0, 0.20, 0.05),
        ("high", "ls"): (31.0, 0.20, 0.05),
        ("high", "ual"): (33.0, 0.25, 0.04),
    }
    for (scenario, variant), (wr, gsm, math_acc) in values.items():
        files.append(write_metric(tmp_path, scenario, variant, "alpacaeval", wr, 1.5))
        files.append(write_metric(tmp_path, scenario, variant, "gsm8k", gsm, 0.05))
        files.append(write_metric(tmp_path, scenario, variant, "math", math_acc, 0.02))
    return files


def reported():
    return pd.read_csv(REPO / "resources" / "paper_reported.csv")


def test_main_table_cells_and_improvement_arithmetic(results):
    metrics = collect.read_metrics(results)
    table = tables.main_table(metrics, reported(), ["high", "mixed"], ["alpacaeval", "gsm8k", "math"])
    cells = {(r["scenario"], r["row"]): r for r in table.to_dict("records")}
    sft = cells[("mixed", "SFT")]
    assert sft["AlpacaEval win rate (%)"] == "40.00 ± 1.50"
    assert sft["GSM8K acc. (%)"] == "50.00 ± 5.00"
    assert sft["MATH acc. (%)"] == "10.00 ± 2.00"
    points = cells[("mixed", "UAL - SFT (points)")]
    assert (points["AlpacaEval win rate (%)"], points["GSM8K acc. (%)"], points["MATH acc. (%)"]) == (
        "4.00", "5.00", "2.00")
    relative = cells[("mixed", "UAL - SFT (relative %)")]
    # 44/40 - 1 = 10 %; 55/50 - 1 = 10 %; 12/10 - 1 = 20 %; low-entropy average (10 + 20) / 2 = 15 %
    assert relative["AlpacaEval win rate (%)"] == "10.00"
    assert (relative["GSM8K acc. (%)"], relative["MATH acc. (%)"]) == ("10.00", "20.00")
    assert relative["low-entropy avg."] == "15.00"
    paper = cells[("mixed", "paper, UAL vs SFT (%)")]
    assert paper["AlpacaEval win rate (%)"] == "10.62" and paper["low-entropy avg."] == "1.81"
    assert paper["GSM8K acc. (%)"] == tables.NOT_REPORTED
    high_paper = cells[("high", "paper, UAL vs SFT (%)")]
    shown = {k: v for k, v in high_paper.items() if k not in table.attrs["csv_only"]}
    assert set(shown.values()) - {"high", "paper, UAL vs SFT (%)"} == {tables.NOT_REPORTED}
    assert cells[("high", "UAL - SFT (relative %)")]["AlpacaEval win rate (%)"] == "10.00"


def test_judge_position_bias_and_unparsed_pairs_stand_beside_every_win_rate(tmp_path):
    files = []
    for seed, (bias, unparsed) in enumerate([(60.0, 0), (70.0, 2)]):
        for variant in ("sft", "ls", "ual", "ual_shuffled"):
            path = tmp_path / f"seed{seed}" / variant / "alpacaeval.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({
                "task": "alpacaeval", "metric": "win_rate", "win_rate": 40.0, "standard_error": 2.0,
                "position_bias": bias if variant != "ls" else None,
                "n_unparsed": unparsed if variant == "ual" else 0,
                "provenance": {}, **identity("mixed", variant, seed)}))
            files.append(path)
    metrics = collect.read_metrics(files)
    main = tables.main_table(metrics, reported(), ["mixed"], ["alpacaeval", "gsm8k"])
    assert main.columns.tolist()[2:5] == ["AlpacaEval win rate (%)", tables.JUDGE_COLUMN, "GSM8K acc. (%)"]
    cells = dict(zip(main["row"], main[tables.JUDGE_COLUMN]))
    # mean over seeds (60, 70); the pairs left without a verdict are summed over seeds; no bias -> n/a
    assert (cells["SFT"], cells["UAL"], cells["LS (constant eps)"]) == ("65.0", "65.0; 2 unparsed", "n/a")
    assert cells["UAL - SFT (points)"] == "" and cells["paper, UAL vs SFT (%)"] == tables.NOT_REPORTED
    ablation = tables.ablation_table(metrics, "mixed", ["alpacaeval"], eps_max=0.2, sweep=[])
    assert ablation.set_index("variant").loc["UAL, shuffled eps", tables.JUDGE_COLUMN] == "65.0"
    assert tables.JUDGE_NOTE in main.attrs["note"] and tables.JUDGE_NOTE in ablation.attrs["note"]
    gsm8k_only = tables.main_table(metrics, reported(), ["mixed"], ["gsm8k"])
    assert tables.JUDGE_COLUMN not in gsm8k_only.columns and tables.JUDGE_NOTE not in gsm8k_only.attrs["note"]


def test_missing_runs_show_as_not_available(results):
    metrics = collect.read_metrics(results)
    table = tables.main_table(metrics, reported(), ["low"], ["alpacaeval", "gsm8k"])
    assert set(table.loc[table.row == "UAL", "GSM8K acc. (%)"]) == {"n/a"}
    assert set(table.loc[table.row == "UAL - SFT (relative %)", "low-entropy avg."]) == {"n/a"}


def test_ablation_table_lists_controls_and_sweep_in_order(results):
    metrics = collect.read_metrics(results)
    table = tables.ablation_table(metrics, "mixed", ["gsm8k"], eps_max=0.2, sweep=[0.1, 0.2, 0.5])
    assert table["variant"].tolist() == [
        "SFT (eps = 0)", "LS (constant = mean UAL eps)", "UAL, shuffled eps", "UAL (eps_max = 0.2)",
        "UAL (eps_max = 0.5)"]  # eps_max 0.1 was not run, so it is left out rather than invented
    assert table["GSM8K acc. (%)"].tolist() == ["50.00 ± 5.00", "52.00 ± 5.00", "51.00 ± 5.00", "55.00 ± 5.00",
                                                 "40.00 ± 5.00"]
    assert set(table["paper"]) == {tables.NOT_REPORTED}


def test_writer_gives_the_same_cells_in_markdown_latex_and_csv(results, tmp_path):
    metrics = collect.read_metrics(results)
    table = tables.main_table(metrics, reported(), ["mixed"], ["alpacaeval", "gsm8k", "math"])
    provenance = {"experiment": "unit", "model": "m", "elicitor": "e", "judge": "j", "seeds": [0],
                  "git_sha": ["abc123def4567890"]}
    paths = tables.write_table(table, tmp_path / "out", "table_main", "Main", provenance)
    md, tex, csv, sidecar = (p.read_text() for p in paths)
    assert "| mixed      | UAL - SFT (relative %)" in md and "git abc123def456" in md
    assert "44.00 $\\pm$ 1.50" in tex and "% Provenance: experiment unit" in tex
    # the CSV: the same cells, and each run's value and interval besides (CSV only)
    shown = table.drop(columns=table.attrs["csv_only"])
    pd.testing.assert_frame_equal(pd.read_csv(paths[2], dtype=str, keep_default_na=False), table.astype(str))
    assert "44.00 ± 1.50" in csv and "seed 0: 44.00 ± 1.50 (se)" in csv and "acc. (%) per run" not in md + tex
    assert list(shown.columns) == ["scenario", "row", "AlpacaEval win rate (%)", tables.JUDGE_COLUMN,
                                   "GSM8K acc. (%)", "MATH acc. (%)", "low-entropy avg."]
    assert tables.SEEDS_NOTE in md and "standard error of that mean" in tex
    assert json.loads(sidecar)["git_sha"] == ["abc123def4567890"]


def test_several_seeds_give_the_mean_and_its_standard_error_over_seeds(tmp_path):
    # three seeds of GSM8K accuracy 50, 54, 58 % with per-run half-intervals of 5: mean 54, sd 4, SEM 4/sqrt(3);
    # AlpacaEval 40, 44 with per-run SE 1.5: mean 42, sd 2.83, SEM 2.00 (not the mean per-run SE 1.5)
    files = [write_metric(tmp_path, "mixed", "ual", "gsm8k", v, 0.05, seed=s)
             for s, v in enumerate((0.50, 0.54, 0.58))]
    files += [write_metric(tmp_path, "mixed", "ual", "alpacaeval", v, 1.5, seed=s) for s, v in enumerate((40.0, 44.0))]
    files.append(write_metric(tmp_path, "mixed", "sft", "gsm8k", 0.40, 0.03))  # one seed: its own interval
    metrics = collect.read_metrics(files)
    table = tables.main_table(metrics, reported(), ["mixed"], ["alpacaeval", "gsm8k"])
    cells = {r["row"]: r for r in table.to_dict("records")}
    assert cells["UAL"]["GSM8K acc. (%)"] == f"54.00 ± {4 / 3 ** 0.5:.2f}" == "54.00 ± 2.31"
    assert cells["UAL"]["AlpacaEval win rate (%)"] == "42.00 ± 2.00"
    assert cells["SFT"]["GSM8K acc. (%)"] == "40.00 ± 3.00"
    assert cells["UAL"]["GSM8K acc. (%) per run"] == (
        "seed 0: 50.00 ± 5.00 (ci95/2); seed 1: 54.00 ± 5.00 (ci95/2); seed 2: 58.00 ± 5.00 (ci95/2)")
    assert cells["UAL - SFT (points)"]["GSM8K acc. (%)"] == "14.00"  # differences of the seed means
    ablation = tables.ablation_table(metrics, "mixed", ["gsm8k"], eps_max=0.2, sweep=[])
    assert ablation.set_index("variant").loc["UAL (eps_max = 0.2)", "GSM8K acc. (%)"] == "54.00 ± 2.31"


def test_bad_metric_file_names_the_file(tmp_path):
    bad = tmp_path / "seed0" / "mixed" / "ual" / "broken.json"  # a path is no identity
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"task": "gsm8k", "metric": "accuracy", "accuracy": 0.5, "scenario": "mixed"}))
    with pytest.raises(ValueError, match=r"broken\.json: result has no 'identity'"):
        collect.read_metrics([bad])
    bad.write_text(json.dumps({"task": "gsm8k", "metric": "accuracy", "accuracy": 0.5,
                               **identity("mixed", "ual", None)}))
    with pytest.raises(ValueError, match=r"broken\.json: its identity has no seed"):
        collect.read_metrics([bad])
    bad.write_text(json.dumps({"task": "gsm8k", "metric": "accuracy", "accuracy": 0.5,
                               **identity("mixed", "ual_epsmax0.30")}))
    with pytest.raises(ValueError, match=r"broken\.json: identity.variant: .*spelled 'ual_epsmax0.3'"):
        collect.read_metrics([bad])
    bad.write_text(json.dumps({"task": "gsm9k", "metric": "accuracy", "accuracy": 0.5, **identity("mixed", "ual")}))
    with pytest.raises(ValueError, match=r"broken\.json: unknown task 'gsm9k'; known tasks: alpacaeval, gsm8k"):
        collect.read_metrics([bad])
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: cannot read result JSON"):
        collect.read_metrics([bad])


def test_uncertainty_table_by_dataset(tmp_path):
    from types import SimpleNamespace

    from ual.elicit import Reply, write_scores
    from ual.elicit.run import score_record

    scores = tmp_path / "scores.jsonl"
    elicitor = SimpleNamespace(name="hf:m", source="verbalized", scorer="verbalized/top20")
    samples = [("gsm8k", 1.0), ("gsm8k", 2.0), ("gsm8k", 3.0), ("alpaca", 9.0), ("alpaca", None)]
    write_scores(scores, [
        score_record(f"k{i}", {"id": f"s{i}", "dataset": d}, "v1", elicitor, Reply("", s, "logits"), 0.0)
        for i, (d, s) in enumerate(samples)
    ])
    table = tables.uncertainty_table(collect.read_scores(scores)).set_index("dataset")
    assert table.loc["gsm8k", "mean score"] == "2.00" and table.loc["gsm8k", "sd"] == "1.00"
    assert table.loc["gsm8k", "median"] == "2.00" and table.loc["gsm8k", "mean u"] == "0.111"
    assert table.loc["alpaca", "missing"] == "1" and table.loc["alpaca", "n"] == "2"


def test_every_table_and_figure_has_a_builder_and_a_caption_and_no_caption_is_orphaned():
    from ual.report import ARTIFACTS, FIGURES, TABLES, get_artifact
    from ual.report.artifacts import CAPTIONS_DIR
    from ual.report.build import BUILDERS

    names = [artifact.name for artifact in ARTIFACTS]
    assert len(set(names)) == len(names) and list(BUILDERS) == names
    assert all((REPO / artifact.caption).is_file() for artifact in ARTIFACTS)
    assert sorted(p.stem for p in (REPO / CAPTIONS_DIR).glob("*.rst")) == sorted(names)
    assert {a.kind for a in TABLES} == {"table"} and {a.kind for a in FIGURES} == {"figure"}
    report = "results/tiny/report/tables"
    assert get_artifact("table_main").files("tiny") == [
        f"{report}/table_main.md", f"{report}/table_main.csv", f"{report}/table_main.tex",
        f"{report}/table_main.provenance.json"]
    assert get_artifact("table_main").published_dir("tiny") == "paper_tables/tiny"
    assert get_artifact("fig_loss").published_dir("tiny") == "figures/tiny"
    with pytest.raises(ValueError, match="unknown table or figure 'table_mian'; known: table_main, table_ablation"):
        get_artifact("table_mian")


def test_cli_requires_existing_experiment(tmp_path):
    with pytest.raises(SystemExit):
        report_main(["tables", "--experiment", str(tmp_path / "none.yaml"), "--metrics", "x", "--clustering", "y",
                     "--calibration", "w", "--scores", "z", "--out", str(tmp_path)])


# --------------------------------------------------------------------------- calibration (ual.analysis.stage)


def interval(value: float, half: float = 0.01) -> dict:
    return {"value": value, "ci_low": value - half, "ci_high": value + half}


def write_calibration(root: Path, scenario: str, models: dict[str, float], seed: int = 0) -> Path:
    """A calibration.json as ``python -m ual.analysis`` writes it; ``models``: name -> NLL on gsm8k."""
    tasks = {"gsm8k": {"label": "GSM8K test gold solutions (MetaMath format)", "n_samples": 40}}
    entries = {}
    for name, nll in models.items():
        metrics = {"nll": interval(nll), "perplexity": interval(2.718281828 ** nll), "entropy": interval(nll / 2),
                   "accuracy": interval(0.5), "confidence": interval(0.6), "ece": interval(0.1), "brier": interval(0.7)}
        curve = {"bin": [7, 11], "confidence": [0.5, 0.75], "accuracy": [0.4, 0.7], "count": [10, 30],
                 "ci_low": [0.3, 0.6], "ci_high": [0.5, 0.8]}
        entries[name] = {"source": f"dir/{name}", "tasks": {"gsm8k": {"n_samples": 40, "n_tokens": 900,
                                                                      "metrics": metrics, "reliability": curve}}}
    differences = {
        reference: {name: {"gsm8k": {m: interval(models[name] - models[reference], 0.002)
                                     for m in ("nll", "entropy", "ece", "brier")}}
                    for name in models if name != reference}
        for reference in ("sft", "base") if reference in models
    }
    path = root / f"calibration-{scenario}-{seed}.json"
    path.write_text(json.dumps({**identity(scenario, None, seed), "references": tasks, "models": entries,
                                "differences": differences}))
    return path


def test_calibration_table_cells_order_and_paired_differences(tmp_path):
    path = write_calibration(tmp_path, "mixed", {"base": 1.5, "sft": 1.2, "ls": 1.25, "ual": 1.22,
                                                 "ual_epsmax0.5": 1.3, "ual_dataset": 1.21})
    table = tables.calibration_table(collect.read_calibration([path]), ["mixed", "high"])
    assert table["model"].tolist() == ["base model (untrained)", "SFT", "LS (constant eps)", "UAL",
                                       "UAL, per-dataset mean eps", "UAL (eps_max = 0.5)"]
    rows = table.set_index("model")
    assert rows.loc["UAL", "NLL (nats/token)"] == "1.220 [1.210, 1.230]"
    assert rows.loc["UAL", "NLL - SFT"] == "0.0200 [0.0180, 0.0220]"
    assert rows.loc["UAL", "NLL - base"] == "-0.2800 [-0.2820, -0.2780]"
    assert rows.loc["UAL", "perplexity"] == "3.387 [3.377, 3.397]"  # e^1.22, 4 significant digits
    assert rows.loc["SFT", "NLL - SFT"] == "reference" and rows.loc["base model (untrained)", "NLL - base"] == "reference"
    assert rows.loc["base model (untrained)", "NLL - SFT"] == "0.3000 [0.2980, 0.3020]"
    assert set(table["task"]) == {"GSM8K test gold solutions (MetaMath format)"} and set(table["references"]) == {"40"}
    assert set(table["scenario"]) == {"mixed"}  # a scenario without results adds no rows
    assert "paired" in table.attrs["note"] and "ECE's own interval may lie above its value" in table.attrs["note"]


def test_calibration_reader_refuses_nan_and_names_the_file_and_field(tmp_path):
    path = write_calibration(tmp_path, "mixed", {"sft": 1.2, "ual": 1.22})
    data = json.loads(path.read_text())
    data["models"]["ual"]["tasks"]["gsm8k"]["metrics"]["ece"]["value"] = float("nan")
    path.write_text(json.dumps(data))  # Python's json writes NaN; the reader must not pass it on
    with pytest.raises(ValueError, match=r"calibration-mixed-0\.json: field 'models\.ual\.tasks\.gsm8k\.metrics\.ece\.value' "
                                         r"is nan, not a finite number"):
        collect.read_calibration([path])
    data["models"]["ual"]["tasks"]["gsm8k"]["metrics"]["ece"]["value"] = 0.1
    data["differences"]["sft"]["ual"]["gsm8k"]["nll"]["ci_high"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"field 'differences\.sft\.ual\.gsm8k\.nll\.ci_high' is None"):
        collect.read_calibration([path])
    data["differences"]["sft"]["ual"]["gsm8k"]["nll"]["ci_high"] = 0.03
    data["models"]["sft"]["tasks"]["gsm8k"]["reliability"]["accuracy"][1] = float("inf")
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"'models\.sft\.tasks\.gsm8k\.reliability\.accuracy\[1\]' is inf"):
        collect.read_reliability([path])


def test_ablation_table_has_the_per_dataset_control(results, tmp_path):
    files = results + [write_metric(tmp_path, "mixed", "ual_dataset", "gsm8k", 0.53, 0.05)]
    table = tables.ablation_table(collect.read_metrics(files), "mixed", ["gsm8k"], eps_max=0.2, sweep=[0.2])
    row = table[table.variant == "UAL, per-dataset eps (mean UAL eps of its dataset)"].iloc[0]
    assert row["GSM8K acc. (%)"] == "53.00 ± 5.00" and row["eps_max"] == "0.2"
    assert table["variant"].tolist().index(row["variant"]) == 3  # after shuffled, before the sweep


def score_rows(source: str, values: dict[str, float], dataset: str = "gsm8k") -> list[dict]:
    """Score records as ual.elicit writes them (uncertainty u; entropy: score 2u nats, u as normalised)."""
    from types import SimpleNamespace

    from ual.elicit import Reply
    from ual.elicit.run import score_record

    elicitor = SimpleNamespace(name="hf:m", source=source, scorer=f"{source}/test")
    rows = []
    for sample, u in values.items():
        score = 1 + 9 * u if source == "verbalized" else 2.0 * u
        row = score_record(f"k-{sample}", {"id": sample, "dataset": dataset}, "v1", elicitor,
                           Reply("", score, "logits" if source == "verbalized" else "entropy"), 0.0)
        rows.append({**row, "uncertainty": u})
    return rows


def test_uncertainty_table_shows_both_sources_and_their_rank_correlation(tmp_path):
    verbalized, entropy = tmp_path / "verbalized.jsonl", tmp_path / "entropy.jsonl"
    # ranks of u: verbalized a<b<c<d<e, entropy b<a<c<e<d -> d^2 = 1+1+0+1+1 = 4 -> rho = 1 - 6*4/(5*24) = 0.8
    v = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5}
    e = {"a": 0.2, "b": 0.1, "c": 0.3, "d": 0.9, "e": 0.6}
    from ual.elicit import write_scores

    write_scores(verbalized, score_rows("verbalized", v) + score_rows("verbalized", {"x": 0.5, "y": 0.7}, "alpaca"))
    write_scores(entropy, score_rows("entropy", e))
    table = tables.uncertainty_table(collect.read_scores([verbalized, entropy]))
    rows = {(r["dataset"], r["source"]): r for r in table.to_dict("records")}
    assert set(rows) == {("alpaca", "verbalized (score 1-10)"), ("gsm8k", "verbalized (score 1-10)"),
                         ("gsm8k", "entropy (nats)")}
    assert rows[("gsm8k", "verbalized (score 1-10)")][tables.RHO] == "0.800 (n = 5)"
    assert rows[("gsm8k", "entropy (nats)")][tables.RHO] == "0.800 (n = 5)"
    assert rows[("gsm8k", "entropy (nats)")]["mean u"] == "0.420" and rows[("gsm8k", "entropy (nats)")]["n"] == "5"
    assert rows[("alpaca", "verbalized (score 1-10)")][tables.RHO] == "n/a (one source)"
    assert rows[("gsm8k", "verbalized (score 1-10)")]["mean score"] == "3.70"  # 1 + 9 * 0.3
    from ual.report import figures

    fig = figures.uncertainty_figure(collect.read_scores([verbalized, entropy]))
    verbal, ent = fig.axes  # one panel per source, each on its own scale
    assert list(verbal.get_xticks()) == list(range(1, 11)) and "(verbalized)" in verbal.get_title()
    assert ent.get_xlim()[1] <= 1.05 and "(entropy)" in ent.get_title()
    assert sum(p.get_height() for p in ent.patches) == 5  # the five gsm8k samples' u, on [0, 1]


def test_figures_draw_an_interval_for_every_point(results, tmp_path):
    from matplotlib.collections import PolyCollection
    from matplotlib.container import ErrorbarContainer

    from ual.report import figures

    path = write_calibration(tmp_path, "mixed", {"base": 1.5, "sft": 1.2, "ls": 1.25, "ual": 1.22})
    fig = figures.calibration_figure(collect.read_reliability([path]), collect.read_calibration([path]), "mixed")
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 4 and all(len(c.lines[0].get_xdata()) == 2 for c in bars)  # 4 models x 2 bins
    assert "UAL (ECE 0.100)" in [t.get_text() for t in ax.get_legend().get_texts()]
    metrics = collect.read_metrics(results)
    fig = figures.ablation_figure(metrics, "mixed", ["gsm8k"], 0.2, [0.2, 0.5])
    (ax,) = fig.axes
    (bar,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bar.lines[0].get_xdata()) == 2  # UAL at 0.2 and 0.5, each with its error bar
    assert len([p for p in ax.patches if p.get_alpha() == 0.12]) == 3  # SFT, LS, shuffled bands
    train = pd.DataFrame({"scenario": "mixed", "variant": "sft", "seed": [0, 0, 1, 1], "step": [1, 2, 1, 2],
                          "loss": [2.0, 1.5, 2.2, 1.7]})
    fig = figures.loss_figure(train, ["mixed"])
    assert any(isinstance(c, PolyCollection) for c in fig.axes[0].collections)  # band over two seeds
    assert "SE over seeds" in fig._suptitle.get_text()
    fig = figures.loss_figure(train[train.seed == 0], ["mixed"])
    assert not any(isinstance(c, PolyCollection) for c in fig.axes[0].collections)
    assert "one seed: no interval" in fig._suptitle.get_text()
