"""The workflow builds its DAG for every experiment file, lints clean, and rejects bad experiment files.

Run: python -m pytest tests/workflow/test_dag.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ual.config import experiment_json_schema

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))

pytestmark = pytest.mark.workflow


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_dry_run_plans_every_stage(path):
    # --forceall: plan every job even where results already exist in this checkout
    result = snakemake("-n", "--forceall", "--configfile", str(path.relative_to(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("elicit_scores", "map_epsilon", "train_model", "generate_outputs", "score_task",
                 "cluster_hidden_states", "make_tables", "make_figures"):
        assert rule in result.stdout, f"{rule} missing from the plan of {path.name}"
    # ual_shuffled is permuted anew per training seed: one epsilon file per seed, one for the other variants
    experiment = yaml.safe_load(path.read_text())
    seeds, scenarios = experiment["train"]["seeds"], experiment["data"]["scenarios"]
    ablation = "mixed" if "mixed" in scenarios else scenarios[0]
    planned = set(re.findall(r"output: (results/\S+/epsilon/\S+\.jsonl)", result.stdout))
    shuffled = {p.rsplit("/", 1)[1] for p in planned if "ual_shuffled" in p}
    assert shuffled == ({f"ual_shuffled.seed{s}.jsonl" for s in seeds}
                        if "ual_shuffled" in experiment["train"]["methods"] else set())
    assert f"results/{path.stem}/epsilon/{ablation}/ual.jsonl" in planned  # experiments: named by file


def test_default_target_is_the_tiny_experiment():
    result = snakemake("-n", "--quiet", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    listing = snakemake("--list-target-rules")
    targets = set(listing.stdout.split())
    assert {"all", "table_main", "table_ablation", "table_clustering", "table_uncertainty",
            "fig_uncertainty", "fig_clusters", "fig_ablation", "fig_loss"} <= targets


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_exported_schema_is_in_sync_with_the_config_classes():
    committed = json.loads((REPO / "workflow" / "schemas" / "experiment.schema.json").read_text())
    assert committed == json.loads(json.dumps(experiment_json_schema())), (
        "regenerate: python -m ual.config --schema > workflow/schemas/experiment.schema.json"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw["train"].update(lerning_rate=1e-5), "unknown key 'train.lerning_rate'"),
        (lambda raw: raw.pop("model"), "missing required key 'model'"),
    ],
    ids=["unknown-key", "missing-model"],
)
def test_bad_experiment_fails_at_dag_construction_naming_file_and_key(tmp_path, edit, message):
    raw = yaml.safe_load((REPO / "experiments" / "tiny.yaml").read_text())
    edit(raw)
    bad = REPO / "experiments" / f"_test_bad_{tmp_path.name}.yaml"
    bad.write_text(yaml.safe_dump(raw))
    try:
        result = snakemake("-n", "--configfile", str(bad.relative_to(REPO)))
    finally:
        bad.unlink()
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output and bad.name in output
