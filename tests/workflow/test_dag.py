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

from ual.experiment import experiment_json_schema
from ual.report import ARTIFACTS

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
                 "analyse_base_model", "analyse_models", "make_tables", "make_figures"):
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
    assert {"all", *(artifact.name for artifact in ARTIFACTS)} <= targets


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_exported_schema_is_in_sync_with_the_config_classes():
    committed = json.loads((REPO / "workflow" / "schemas" / "experiment.schema.json").read_text())
    assert committed == json.loads(json.dumps(experiment_json_schema())), (
        "regenerate: python -m ual.experiment --schema > workflow/schemas/experiment.schema.json"
    )


def _bad_names(raw):
    raw["data"]["low"].update(dataset="gsm9k")
    raw["data"]["high"].update(split="trian")
    raw["model"].update(source="package:llm-nope")
    raw["train"].update(seeds=[0, 0])


@pytest.mark.parametrize(
    ("edit", "messages"),
    [
        (lambda raw: raw["train"].update(lerning_rate=1e-5), ["unknown key 'train.lerning_rate'"]),
        (lambda raw: raw.pop("model"), ["missing required key 'model'"]),
        # issue 15: these passed `snakemake -n` (45 jobs planned) and failed at training
        (_bad_names, ["key 'data.low.dataset': Value error, unknown dataset 'gsm9k'; known datasets: alpaca,",
                      "key 'data.high.split': Value error, dataset 'alpaca_gpt4_demo' has no split 'trian'",
                      "key 'model.source': Value error, unknown packaged model 'package:llm-nope'; known",
                      "key 'train.seeds': Value error, 0 listed more than once"]),
        (lambda raw: raw["evaluate"].update(judge="alpaca_eval_gpt5"),
         ["key 'evaluate.judge': unknown judge 'alpaca_eval_gpt5' (an annotator folder or one of: "]),
    ],
    ids=["unknown-key", "missing-model", "unknown-names", "unknown-judge"],
)
def test_bad_experiment_fails_at_dag_construction_naming_file_and_key(tmp_path, make_experiment, edit, messages):
    bad = make_experiment(tmp_path, name="bad", edit=edit)
    result = snakemake("-n", "--config", f"experiment={bad}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(bad) in output and "rule " not in result.stdout  # nothing planned
    for message in messages:
        assert message in output


def test_yaml_syntax_error_is_located_when_the_experiment_is_given_with_config_experiment(tmp_path,
                                                                                         make_experiment):
    # Snakemake parses a --configfile itself before the workflow runs ("Config file is not valid JSON or
    # YAML", no file or line); --config experiment=FILE, the documented way, leaves the parsing to ual.experiment.
    bad = make_experiment(tmp_path, name="broken")
    lines = bad.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith("  seed:"))
    lines[number] = "  seed: [0"
    bad.write_text("\n".join(lines) + "\n")
    result = snakemake("-n", "--config", f"experiment={bad}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # file:line:column, PyYAML noticing at the start of the line after (1-based line number + 2, column 1+)
    assert re.search(rf"{re.escape(str(bad))}:{number + 2}:\d+: not valid YAML: while parsing a flow sequence",
                     output), output[-3000:]


@pytest.mark.parametrize(
    ("name", "gpus", "launcher"),
    [("paper_llama2-7b", 8, "torchrun --standalone --nproc_per_node 8 -m ual.train"),
     ("qwen2.5-0.5b", 1, "python -m ual.train"),
     ("tiny", 0, "python -m ual.train")],
)
def test_training_asks_for_exactly_the_gpus_torchrun_is_told_to_use(name, gpus, launcher):
    # What the main process submits (SLURM profile + the auto-loaded default profile) and what the job itself
    # runs (--mode remote: no profiles, as inside the SLURM job) agree, and follow the experiment.
    target = f"results/{name}/seed0/train/mixed/ual/train_metrics.json"
    config = ["--configfiles", f"experiments/{name}.yaml"]
    main = snakemake(target, "-n", "-p", "--forceall", "--profile", "profiles/slurm", *config)
    job = snakemake(target, "-n", "-p", "--forceall", "--mode", "remote", "--allowed-rules", "train_model",
                    *config)
    for result in (main, job):
        assert result.returncode == 0, result.stderr[-3000:]
        block = result.stdout[result.stdout.index("rule train_model:"):]
        resources = re.search(r"resources: (.*)", block).group(1)
        assert f"gpu={gpus}," in f"{resources},", resources
        assert re.search(r"Shell command: (.*)", block).group(1).startswith(launcher)
    assert "slurm_account=your-account" in main.stdout  # the SLURM profile's defaults are not overridden


def test_the_default_profile_sets_no_key_of_the_slurm_profile():
    # profiles/default is loaded on every run, also beside --profile profiles/slurm, and wins key by key
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert not set(default) & set(slurm)
    assert not {"default-resources", "set-resources", "set-threads"} & set(default)
    assert all(not entry.startswith("gpu") for entry in default["resources"])
