"""The whole DAG runs for real on a cut-down experiment, every table and figure parses, and reruns are minimal.

tests/workflow/smoke.yaml: the packaged SmolLM2 cut to 2 layers, 4 + 4 training samples, 2 items per benchmark.
The run happens in a temporary working directory (``--directory``), so the repository stays clean.

Run: UAL_DATA_MIRROR=../shared/data python -m pytest tests/workflow/test_smoke.py   (about 3-5 minutes on CPU)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TABLES = ["table_main", "table_ablation", "table_crosscheck", "table_clustering", "table_uncertainty"]
FIGURES = ["fig_uncertainty", "fig_clusters", "fig_ablation", "fig_loss"]
EXPENSIVE = ("elicit_scores", "map_epsilon", "train_model", "cluster_hidden_states")

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "experiments" / "smoke.yaml"), *args]
    env = {**os.environ, "UAL_MODEL_CACHE": str((REPO / "resources" / "models").resolve())}
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1500, env=env)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_mirror):
    os.environ["UAL_DATA_MIRROR"] = str(data_mirror.resolve())  # the run changes directory
    work = tmp_path_factory.mktemp("smoke")
    (work / "experiments").mkdir()
    shutil.copy(REPO / "tests" / "workflow" / "smoke.yaml", work / "experiments" / "smoke.yaml")
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return work


def test_every_table_is_produced_and_parses(smoke_run):
    for name in TABLES:
        base = smoke_run / "paper_tables" / "smoke" / name
        md = base.with_suffix(".md").read_text()
        assert md.startswith("# ") and "| " in md and "Provenance: experiment smoke" in md
        assert "\\begin{tabular}" in base.with_suffix(".tex").read_text()
        table = pd.read_csv(base.with_suffix(".csv"))
        assert len(table) > 0
        provenance = json.loads(Path(f"{base}.provenance.json").read_text())
        assert provenance["experiment"] == "smoke" and provenance["seeds"] == [0]
    main = pd.read_csv(smoke_run / "paper_tables" / "smoke" / "table_main.csv")
    assert {"SFT", "LS (constant eps)", "UAL", "UAL - SFT (relative %)"} <= set(main["row"])
    paper = main[main["row"] == "paper, UAL vs SFT (%)"].iloc[0]
    assert float(paper["AlpacaEval win rate (%)"]) == 10.62 and float(paper["low-entropy avg."]) == 1.81
    crosscheck = pd.read_csv(smoke_run / "paper_tables" / "smoke" / "table_crosscheck.csv")
    assert crosscheck["row"].tolist() == ["SFT", "LS (constant eps)", "UAL"]  # the mixed scenario
    assert {"MetaMath verbatim", "lm-eval strict-match", "lm-eval flexible-extract"} <= set(crosscheck.columns)


def test_every_figure_is_produced_and_parses(smoke_run):
    for name in FIGURES:
        png = smoke_run / "figures" / "smoke" / f"{name}.png"
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
        assert (smoke_run / "figures" / "smoke" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_every_metric_records_its_provenance(smoke_run):
    metrics = sorted(p for p in (smoke_run / "results" / "smoke").glob("seed0/evaluate/*/*/*.json")
                     if p.stem in {"alpacaeval", "gsm8k", "math"})
    assert len(metrics) == 5 * 3  # sft, ls, ual, ual_shuffled, ual_epsmax0.1 x 3 tasks
    for path in metrics:
        data = json.loads(path.read_text())
        assert data["scenario"] == "mixed" and data["seed"] == 0 and data["method"] == path.parent.name
        assert data["provenance"]["git_sha"] and data["provenance"]["versions"]["transformers"]


def test_second_run_does_nothing(smoke_run):
    result = snakemake(smoke_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_touching_the_experiment_file_reruns_nothing(smoke_run):
    path = smoke_run / "experiments" / "smoke.yaml"
    os.utime(path)
    result = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_editing_evaluation_settings_reruns_only_evaluation_and_report(smoke_run):
    path = smoke_run / "experiments" / "smoke.yaml"
    original = path.read_text()
    raw = yaml.safe_load(original)
    raw["evaluate"]["max_new_tokens"]["gsm8k"] = 9
    path.write_text(yaml.safe_dump(raw))
    try:
        result = snakemake(smoke_run, "-n")
    finally:
        path.write_text(original)
    planned = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "generate_outputs" in planned and "score_task" in planned and "make_tables" in planned
    for rule in EXPENSIVE:
        assert f"rule {rule}:" not in planned and f"localrule {rule}:" not in planned, f"{rule} would rerun"


def test_snakemake_html_report_embeds_the_figures(smoke_run):
    result = snakemake(smoke_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (smoke_run / "report.html").read_text(errors="replace")
    assert "fig_clusters.png" in html and "table_main.csv" in html
