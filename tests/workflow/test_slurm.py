"""The workflow through a real SLURM cluster, with the project's profile, gives the results of a local run.

.ci/slurm-up.sh starts a single-node cluster on 127.0.0.1 (munge, MariaDB + slurmdbd, slurmctld, slurmd; as
root, installing the Debian packages when missing) and .ci/slurm-down.sh stops it at the end. The smallest
chain of the smoke experiment with a judge job (elicit_scores -> map_epsilon -> train_model with 0 GPUs ->
generate_outputs -> score_task with the local judge, for SFT on AlpacaEval; fetch_data is a localrule and runs
in the main process) is submitted with profiles/slurm, only the account and partition given on the command
line, and its result files are compared with those of the same target run locally. Bad input (an unknown account
or partition, a GPU request on a partition without GPUs) fails before the first sbatch, naming the key.

It changes the machine (installs packages, starts daemons), so it runs only when asked: UAL_TEST_SLURM=1, which
.ci/run sets. Otherwise, and where the machine cannot run the daemons (not root, no apt-get, a SLURM
configuration of its own), it is skipped with the reason.

Run: UAL_TEST_SLURM=1 UAL_DATA_MIRROR=../shared/data python -m pytest tests/workflow/test_slurm.py   (about 4 min)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slurm, pytest.mark.workflow, pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("UAL_TEST_SLURM") != "1",
                       reason="installs and starts a SLURM cluster on this machine: set UAL_TEST_SLURM=1 to run it"),
]

TARGET = "results/smoke/seed0/evaluate/mixed/sft/alpacaeval.json"
RULES = ["elicit_scores", "map_epsilon", "train_model", "generate_outputs", "score_task"]  # submitted jobs
PROFILE = ["--profile", str(REPO / "profiles" / "slurm")]
CLUSTER = ["--default-resources", "slurm_account=ualtest", "slurm_partition=debug"]
# Fields that legitimately differ between two runs of the same jobs: wall-clock times and durations, speeds,
# peak memory. Everything else (scores, epsilons, weights, generations, verdicts, provenance) must be equal.
VOLATILE = {"created_utc", "seconds", "train_runtime_s", "tokens_per_second", "response_tokens_per_second",
            "peak_memory", "preference_date", "preference_time_per_example"}


def new_workdir(path: Path) -> Path:
    (path / "experiments").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "smoke.yaml", path / "experiments" / "smoke.yaml")
    return path


def snakemake(work: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """The workflow on work/experiments/smoke.yaml in ``work``, data from the mirror (UAL_DATA_MIRROR)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "experiments" / "smoke.yaml"), *args]
    models = os.environ.get("UAL_MODEL_CACHE") or str(REPO / "resources" / "models")  # absolute: cwd moves
    env = {**os.environ, "UAL_MODEL_CACHE": str(Path(models).resolve()), "XDG_CACHE_HOME": str(work / ".cache")}
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def mirror(data_mirror):
    os.environ["UAL_DATA_MIRROR"] = str(data_mirror.resolve())  # the runs change directory
    return data_mirror


@pytest.fixture(scope="module")
def local_run(mirror, tmp_path_factory):
    """The same target run locally, the reference for the SLURM run's results."""
    work = new_workdir(tmp_path_factory.mktemp("smoke_local"))
    result = snakemake(work, "--cores", "2", "--", TARGET)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return work


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a SLURM test cluster needs root (its daemons run as root)")
    run = tmp_path_factory.mktemp("slurm")
    up = subprocess.run([str(REPO / ".ci" / "slurm-up.sh"), str(run)], capture_output=True, text=True,
                        timeout=900)
    if up.returncode == 2:
        pytest.skip(f"cannot run a SLURM test cluster here: {up.stderr.strip()}")
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        yield run
    finally:
        down = subprocess.run([str(REPO / ".ci" / "slurm-down.sh"), str(run)], capture_output=True, text=True,
                              timeout=120)
        assert down.returncode == 0, down.stderr


def rule_of(job: dict[str, str]) -> str:
    """The rule of a job, from the comment the plugin gives it (rule_<name>_wildcards_<values>)."""
    return re.sub(r"_wildcards_.*", "", job["Comment"]).removeprefix("rule_")


def slurm_jobs(run_id: str) -> list[dict[str, str]]:
    """sacct's record of the jobs of one Snakemake run (the plugin names every job by the run's ID)."""
    fields = ["JobID", "State", "Comment", "ReqCPUS", "ReqMem", "Timelimit", "ReqTRES"]
    result = subprocess.run(["sacct", "--allocations", "--noheader", "--parsable2", "--starttime=now-1days",
                             f"--name={run_id}", f"--format={','.join(fields)}"],
                            capture_output=True, text=True, timeout=60, check=True)
    return [dict(zip(fields, line.split("|"), strict=True)) for line in result.stdout.splitlines()]


def run_id_of(result: subprocess.CompletedProcess) -> str:
    return re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr).group(1)


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, mirror, tmp_path_factory):
    work = new_workdir(tmp_path_factory.mktemp("smoke_slurm"))
    result = snakemake(work, *PROFILE, *CLUSTER, "--", TARGET)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return work, run_id_of(result)


def test_every_job_completed_in_sacct(slurm_run):
    _, run_id = slurm_run
    jobs = slurm_jobs(run_id)
    assert sorted(rule_of(j) for j in jobs) == sorted(RULES)
    assert {j["State"] for j in jobs} == {"COMPLETED"}, jobs


def test_jobs_asked_for_what_the_experiment_says(slurm_run):
    # tests/fixtures/smoke.yaml: 0 GPUs, 1 CPU, 15 minutes per job; 3000 MB for training, 2000 MB elsewhere
    jobs = {rule_of(j): j for j in slurm_jobs(slurm_run[1])}
    for rule, job in jobs.items():
        assert job["ReqMem"] == ("3000M" if rule == "train_model" else "2000M"), (rule, job)
        assert job["ReqCPUS"] == "1" and job["Timelimit"] == "00:15:00", (rule, job)
        assert "gpu" not in job["ReqTRES"], (rule, job)


def _normalised(path: Path, work: Path):
    """A result file's content without the volatile fields and with the working directory replaced."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value.replace(str(work), "<work>") if isinstance(value, str) else value

    text = path.read_text()
    if path.suffix == ".jsonl":
        return [clean(json.loads(line)) for line in text.splitlines() if line.strip()]
    if path.suffix == ".json":
        return clean(json.loads(text))
    if path.suffix in (".yaml", ".yml"):
        return clean(yaml.safe_load(text))
    return text


def test_outputs_equal_those_of_the_local_run(slurm_run, local_run):
    work, _ = slurm_run
    produced = sorted(p for p in (work / "results").rglob("*") if p.is_file())
    assert len(produced) == len([p for p in (local_run / "results").rglob("*") if p.is_file()])
    expected = {"scores.jsonl", "sft.jsonl", "model.safetensors", "train_metrics.json", "alpacaeval.json",
                "alpacaeval.annotations.json"}
    assert expected <= {p.name for p in produced}
    for path in produced:
        local = local_run / path.relative_to(work)
        assert local.is_file(), f"{local} missing from the local run"
        if path.suffix in (".json", ".jsonl", ".yaml", ".txt", ".jinja"):
            assert _normalised(path, work) == _normalised(local, local_run), path.relative_to(work)
        else:  # weights, tokenizer and trainer state: byte for byte
            assert path.read_bytes() == local.read_bytes(), path.relative_to(work)
    verdicts = json.loads((work / "results/smoke/seed0/evaluate/mixed/sft/alpacaeval.json").read_text())
    assert verdicts["n_total"] == 2 and verdicts["provenance"]["git_sha"]


@pytest.fixture
def bad_workdir(slurm_cluster, mirror, tmp_path):
    return new_workdir(tmp_path / "work")


def test_unknown_account_and_gpus_on_a_partition_without_gpus_fail_before_any_submission(bad_workdir):
    path = bad_workdir / "experiments" / "smoke.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["resources"]["train"]["gpus"] = 1
    path.write_text(yaml.safe_dump(raw))
    result = snakemake(bad_workdir, *PROFILE, "--default-resources", "slurm_account=nosuch",
                       "slurm_partition=debug", "--", TARGET, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "nothing was submitted" in output
    assert ("default-resources: slurm_account = 'nosuch': the cluster has no such account for user root "
            "(sacctmgr lists: root, ualtest) (rules " + ", ".join(sorted(RULES)) + ")") in output
    assert ("experiments/smoke.yaml: resources.train.gpus = 1 asks for GPUs, but partition 'debug' "
            "(default-resources: slurm_partition) has none (sinfo gres: (null)) (rule train_model)") in output
    assert slurm_jobs(run_id_of(result)) == []


def test_profile_partitions_the_cluster_lacks_fail_before_any_submission(bad_workdir):
    # the profile as shipped (partitions cpu and gpu) on a cluster whose only partition is debug
    result = snakemake(bad_workdir, *PROFILE, "--default-resources", "slurm_account=ualtest", "--", TARGET,
                       timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    partitions = REPO / "profiles" / "slurm" / "partitions.yaml"
    assert (f"slurm-partition-config {partitions}: chosen partition = 'cpu': no such partition (sinfo lists: "
            "debug) (rules " + ", ".join(sorted(RULES)) + ")") in output
    assert slurm_jobs(run_id_of(result)) == []


def test_without_the_check_the_sbatch_error_names_the_rule(bad_workdir):
    # --no-hooks skips the check (the onstart hook): the first submission fails and says why
    result = snakemake(bad_workdir, *PROFILE, "--no-hooks", "--default-resources", "slurm_account=ualtest",
                       "slurm_partition=nosuch", "--", TARGET, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"Error in rule elicit_scores:\s+message: SLURM sbatch failed\. The error message was "
                     r"'sbatch: error: invalid partition specified: nosuch", output), output[-3000:]
