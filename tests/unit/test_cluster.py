"""Job requests from the experiment (ual.config resources, ual.cluster.snakemake_resources) and the SLURM
pre-flight check on hand-written cluster facts (the real cluster: tests/workflow/test_slurm.py).

Run: python -m pytest tests/unit/test_cluster.py
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ual.cluster import (
    STAGES,
    ClusterError,
    ClusterFacts,
    JobRequest,
    Partition,
    check_requests,
    check_snakemake_jobs,
    parse_sinfo,
    parse_slurm_minutes,
    snakemake_resources,
)
from ual.experiment import ConfigError, load_experiment

REPO = Path(__file__).resolve().parents[2]


def experiment(tmp_path, edit=None, base="experiments/tiny.yaml"):
    raw = yaml.safe_load((REPO / base).read_text())
    if edit:
        edit(raw)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(path)


def test_paper_profile_asks_for_one_node_of_eight_gpus_for_training():
    paper = load_experiment(REPO / "experiments" / "paper_llama2-7b.yaml")
    assert snakemake_resources(paper, "train") == {
        "stage": "train", "gpu": 8, "cpus_per_task": 64, "mem_mb": 480000, "runtime": 2880}
    assert snakemake_resources(paper, "generate")["gpu"] == 1
    # the API judge and elicitor take the one-at-a-time slots; map_epsilon (default) gets the defaults
    assert snakemake_resources(paper, "evaluate") == {
        "stage": "evaluate", "gpu": 0, "cpus_per_task": 1, "mem_mb": 16000, "runtime": 720, "judge_api": 1}
    assert snakemake_resources(paper, "elicit")["elicitor_api"] == 1
    assert snakemake_resources(paper, "default") == {
        "stage": "default", "gpu": 0, "cpus_per_task": 1, "mem_mb": 16000, "runtime": 120}


def test_cpu_experiments_ask_for_no_gpu_and_local_models_take_no_api_slot():
    for name in ("experiments/tiny.yaml", "tests/fixtures/smoke.yaml"):
        exp = load_experiment(REPO / name)
        for stage in STAGES:
            res = snakemake_resources(exp, stage)
            assert res["gpu"] == 0, (name, stage)
            assert res.get("judge_api", 0) == 0 and res.get("elicitor_api", 0) == 0


def test_without_a_resources_section_bf16_model_stages_get_one_gpu(tmp_path):
    def bf16_without_resources(raw):
        raw.pop("resources")
        raw["model"]["dtype"] = "bfloat16"

    exp = experiment(tmp_path, bf16_without_resources)
    gpus = {stage: snakemake_resources(exp, stage)["gpu"] for stage in STAGES}
    assert gpus == {"train": 1, "generate": 1, "analysis": 1, "elicit": 0, "evaluate": 0, "default": 0}
    assert snakemake_resources(exp, "train") == {"stage": "train", "gpu": 1, "cpus_per_task": 1, "mem_mb": 4000}


def test_a_stage_entry_overrides_the_default_key_by_key(tmp_path):
    def edit(raw):
        raw["resources"] = {"default": {"cpus": 2, "mem_mb": 1000, "runtime_min": 30},
                            "train": {"mem_mb": 9000}}

    exp = experiment(tmp_path, edit)
    assert snakemake_resources(exp, "train") == {
        "stage": "train", "gpu": 0, "cpus_per_task": 2, "mem_mb": 9000, "runtime": 30}
    assert snakemake_resources(exp, "generate") == {
        "stage": "generate", "gpu": 0, "cpus_per_task": 2, "mem_mb": 1000, "runtime": 30}


def test_an_unknown_stage_is_an_error_naming_the_known_stages():
    exp = load_experiment(REPO / "experiments" / "tiny.yaml")
    message = "unknown resources stage 'train_model'; known stages: default, elicit, train, generate, evaluate"
    with pytest.raises(ClusterError, match=message):
        snakemake_resources(exp, "train_model")  # a rule's name is not a stage: no silent default


def test_resources_are_not_part_of_the_run_identity(tmp_path):
    from ual.config import config_hash, resolved_config

    small = experiment(tmp_path, lambda raw: raw["resources"]["train"].update(mem_mb=100))
    large = experiment(tmp_path, lambda raw: raw["resources"]["train"].update(mem_mb=9000, runtime_min=9999))
    assert config_hash(small) == config_hash(large)
    assert "resources" not in resolved_config(small)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw["resources"]["train"].update(gpu=8), "unknown key 'resources.train.gpu'"),
        (lambda raw: raw["resources"].update(trian={"gpus": 1}), "unknown key 'resources.trian'"),
        (lambda raw: raw["resources"]["train"].update(gpus=-1), "key 'resources.train.gpus'"),
    ],
    ids=["typo-in-key", "typo-in-stage", "negative"],
)
def test_bad_resources_name_the_key(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        experiment(tmp_path, edit)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("infinite", None), ("UNLIMITED", None), ("30", 30), ("30:00", 30), ("30:01", 31), ("2:00:00", 120),
     ("1-00:00:00", 1440), ("2-12", 3600), ("1-02:30", 1590)],
)
def test_slurm_time_limits_in_minutes(text, minutes):
    assert parse_slurm_minutes(text) == minutes


def test_sinfo_partitions_take_their_largest_node_and_count_gpus():
    # sinfo --noheader --format="%P|%G|%c|%m|%l": one line per node group
    text = ("debug*|(null)|2|20489|infinite\n"
            "gpu|gpu:a100:4(S:0-1)|64|512000|2-00:00:00\n"
            "gpu|gpu:8,shard:16|128|1024000|2-00:00:00\n")
    partitions, default = parse_sinfo(text)
    assert default == "debug"
    assert partitions["debug"] == Partition("debug", gpus=0, cpus=2, mem_mb=20489, max_runtime_min=None)
    gpu = partitions["gpu"]
    assert gpu.gpus == 8 and gpu.cpus == 128 and gpu.mem_mb == 1024000
    assert partitions["gpu"].max_runtime_min == 2880


FACTS = ClusterFacts(
    partitions={"debug": Partition("debug", gpus=0, cpus=2, mem_mb=20000, max_runtime_min=None),
                "gpu": Partition("gpu", gpus=4, cpus=32, mem_mb=256000, max_runtime_min=600, gres="gpu:4")},
    default_partition="debug",
    accounts=frozenset({"root", "ualtest"}),
    user="root",
)
SOURCES = {"account": "default-resources: slurm_account", "partition": "default-resources: slurm_partition",
           "gpus": "exp.yaml: resources.train.gpus", "mem_mb": "exp.yaml: resources.train.mem_mb",
           "cpus": "exp.yaml: resources.train.cpus", "runtime_min": "exp.yaml: resources.train.runtime_min"}


def request(rule="train_model", **kwargs):
    fields = {"rule": rule, "account": "ualtest", "partition": "debug", "sources": SOURCES}
    return JobRequest(**{**fields, **kwargs})


def test_a_request_the_cluster_can_run_has_no_problem():
    assert check_requests([request(), request(partition="gpu", gpus=4, cpus=32, runtime_min=600),
                           request(partition=None)], FACTS) == []


def test_each_problem_names_key_value_and_what_the_cluster_has():
    problems = check_requests([
        request(account="nosuch"),
        request(partition="nosuch"),
        request(gpus=1),
        request(partition="gpu", gpus=8, mem_mb=300000, runtime_min=601, cpus=33),
    ], FACTS)
    assert problems == [
        "default-resources: slurm_account = 'nosuch': the cluster has no such account for user root "
        "(sacctmgr lists: root, ualtest) (rule train_model)",
        "default-resources: slurm_partition = 'nosuch': no such partition (sinfo lists: debug, gpu) "
        "(rule train_model)",
        "exp.yaml: resources.train.gpus = 1 asks for GPUs, but partition 'debug' (default-resources: "
        "slurm_partition) has none (sinfo gres: (null)) (rule train_model)",
        "exp.yaml: resources.train.gpus = 8: partition 'gpu' (default-resources: slurm_partition) has at "
        "most 4 GPUs per node (rule train_model)",
        "exp.yaml: resources.train.cpus = 33: partition 'gpu' (default-resources: slurm_partition) has at "
        "most 32 CPUs per node (rule train_model)",
        "exp.yaml: resources.train.mem_mb = 300000: partition 'gpu' (default-resources: slurm_partition) "
        "has at most 256000 MB per node (rule train_model)",
        "exp.yaml: resources.train.runtime_min = 601: partition 'gpu' (default-resources: slurm_partition) "
        "allows at most 600 minutes (rule train_model)",
    ]


def test_one_line_per_key_and_value_with_every_rule_it_hits():
    problems = check_requests([request(rule=r, account="nosuch") for r in ("train_model", "map_epsilon",
                                                                          "train_model")], FACTS)
    assert len(problems) == 1 and problems[0].endswith("(rules map_epsilon, train_model)")


def test_accounts_are_not_checked_where_accounting_is_off():
    facts = ClusterFacts(partitions=FACTS.partitions, default_partition="debug", accounts=None, user="root")
    assert check_requests([request(account="anything")], facts) == []
    # a job without a partition goes to the default one, and is checked there
    problems = check_requests([request(partition=None, gpus=1)], facts)
    assert "the default partition 'debug' has none" in problems[0]


def snakemake_job(rule: str, **resources):
    """What check_snakemake_jobs reads of a Snakemake job: its rule's name and its resources."""
    return SimpleNamespace(rule=SimpleNamespace(name=rule), resources={"slurm_account": "ualtest",
                                                                        "slurm_partition": "debug", **resources})


def test_the_check_finds_each_jobs_stage_in_its_resources():
    exp = load_experiment(REPO / "experiments" / "paper_llama2-7b.yaml")
    jobs = [snakemake_job("train_model", **snakemake_resources(exp, "train")),
            snakemake_job("renamed_scoring", **{**snakemake_resources(exp, "evaluate"), "slurm_partition": "gpu"})]
    with pytest.raises(ClusterError) as error:
        check_snakemake_jobs(jobs, {}, "paper.yaml", facts=FACTS)
    # the GPU request is the train stage's, whatever the rule is called, and its key names the stage
    assert ("paper.yaml: resources.train.gpus = 8 asks for GPUs, but partition 'debug' (default-resources: "
            "slurm_partition) has none") in str(error.value)
    assert ("paper.yaml: resources.evaluate.runtime_min = 720: partition 'gpu' (default-resources: "
            "slurm_partition) allows at most 600 minutes (rule renamed_scoring)") in str(error.value)
    with pytest.raises(ClusterError, match=r"rule make_tables has no 'stage' resource: .*job_resources\(<stage>\)"):
        check_snakemake_jobs([snakemake_job("make_tables", gpu=0)], {}, "paper.yaml", facts=FACTS)
    with pytest.raises(ClusterError, match="unknown resources stage 'report'; known stages: default"):
        check_snakemake_jobs([snakemake_job("make_tables", stage="report")], {}, "paper.yaml", facts=FACTS)
