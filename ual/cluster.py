"""What each job asks its executor for, and a check of a SLURM submission before the first sbatch.

The requests come from the experiment (its ``resources`` section, ``ual.config.JobResources``) through the
rules' own ``resources``: each rule asks by stage name (``job_resources("train")`` in the workflow, a field of
``ual.config.ResourcesConfig``; an unknown name is an error listing the stages), and the stage travels with
the job as its string resource ``stage``. So one SLURM profile serves a CPU experiment and the 8-GPU paper
profile alike; the
profile (``profiles/slurm/``) names only cluster facts: the account and the partitions with their limits.
Before the first submission the workflow (``workflow/rules/cluster.smk``, an ``onstart`` hook, SLURM executor
only) checks every job against what the cluster reports, so a wrong account, partition or GPU request fails
once, naming the profile or experiment key and its value, instead of at every sbatch.

Inputs: an ``Experiment``; for the check, the jobs' resources, the profile's ``set-resources`` and the
cluster's own view (``sinfo``, ``sacctmgr``).
Outputs: Snakemake resource dicts (``snakemake_resources``); ``ClusterError`` listing every problem.
Command: ``python -m ual.cluster --account A --partition P [--gpus N --cpus N --mem-mb N --runtime-min N]``
checks one request by hand against the cluster that SLURM_CONF (or /etc/slurm) names.
"""

from __future__ import annotations

import argparse
import getpass
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ual.config import Experiment, ResourcesConfig

__all__ = [
    "STAGES",
    "ClusterError",
    "ClusterFacts",
    "JobRequest",
    "Partition",
    "check_requests",
    "check_snakemake_jobs",
    "parse_sinfo",
    "parse_slurm_minutes",
    "query_cluster",
    "snakemake_resources",
]

# The stages a rule may ask resources for: the entries of the experiment's resources section.
STAGES: tuple[str, ...] = tuple(ResourcesConfig.model_fields)


class ClusterError(ValueError):
    """A submission the cluster would reject; names each key, its value and what the cluster has."""


def _known_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ClusterError(f"unknown resources stage '{stage}'; known stages: {', '.join(STAGES)}")
    return stage


def snakemake_resources(experiment: Experiment, stage: str) -> dict[str, int | str]:
    """The ``resources`` of one job of ``stage``: the stage itself, gpu, cpus_per_task, mem_mb, runtime
    (minutes) and API slots.

    ``elicitor_api`` / ``judge_api`` (1 per job, at most 1 at a time: the profiles' global resources) are
    taken only by jobs that call a paid, rate-limited API (the openai elicitor, a judge other than the local).
    """
    job = experiment.job_resources(_known_stage(stage))
    resources: dict[str, int | str] = {"stage": stage, "gpu": job.gpus, "cpus_per_task": job.cpus,
                                       "mem_mb": job.mem_mb}
    if job.runtime_min is not None:
        resources["runtime"] = job.runtime_min
    if stage == "elicit":
        resources["elicitor_api"] = int(experiment.elicit.backend == "openai")
    if stage == "evaluate":
        resources["judge_api"] = int(experiment.evaluate.judge != "local")
    return resources


@dataclass(frozen=True)
class Partition:
    """A partition as ``sinfo`` reports it: the largest node's GPUs, CPUs and memory, and the time limit."""

    name: str
    gpus: int
    cpus: int
    mem_mb: int
    max_runtime_min: int | None  # None: no limit
    gres: str = "(null)"


@dataclass(frozen=True)
class ClusterFacts:
    partitions: Mapping[str, Partition]
    default_partition: str | None
    accounts: frozenset[str] | None  # None: accounting cannot be asked (no slurmdbd); not checked
    user: str = ""


@dataclass(frozen=True)
class JobRequest:
    """One job's SLURM request; ``sources`` says where each value is set (a profile or experiment key)."""

    rule: str
    account: str | None
    partition: str | None
    gpus: int = 0
    cpus: int = 1
    mem_mb: int | None = None
    runtime_min: int | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, name)


def parse_slurm_minutes(text: str) -> int | None:
    """A SLURM time limit (``infinite``, ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in minutes."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def _gpus_of(gres: str) -> int:
    """GPUs in a sinfo gres column such as ``gpu:8``, ``gpu:a100:4(S:0-1)``, ``gpu:2,shard:4``, ``(null)``."""
    total = 0
    for item in gres.split(","):
        match = re.match(r"gpu(?::[^:(]+)?:(\d+)", item.strip())
        if match:
            total += int(match.group(1))
    return total


# partition (* = default), gres, CPUs, memory (MB), time limit; one line per node group
SINFO_FORMAT = "%P|%G|%c|%m|%l"


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def parse_sinfo(text: str) -> tuple[dict[str, Partition], str | None]:
    """Partitions (largest node of each) and the default one from ``sinfo --format=SINFO_FORMAT``."""
    partitions: dict[str, Partition] = {}
    default = None
    for line in text.splitlines():
        if not line.strip():
            continue
        name, gres, cpus, mem, limit = line.strip().split("|")
        if name.endswith("*"):
            name = default = name[:-1]
        seen = partitions.get(name)
        partitions[name] = Partition(
            name=name,
            gpus=max(_gpus_of(gres), seen.gpus if seen else 0),
            cpus=max(int(re.sub(r"\D.*", "", cpus) or 0), seen.cpus if seen else 0),
            mem_mb=max(int(re.sub(r"\D.*", "", mem) or 0), seen.mem_mb if seen else 0),
            max_runtime_min=parse_slurm_minutes(limit),
            gres=gres if not seen or seen.gres == "(null)" else seen.gres,
        )
    return partitions, default


def query_cluster() -> ClusterFacts:
    """Partitions from ``sinfo`` and the user's accounts from ``sacctmgr`` (None where accounting is off)."""
    try:
        result = _run(["sinfo", "--noheader", f"--format={SINFO_FORMAT}"])
    except FileNotFoundError:
        raise ClusterError("sinfo is not installed: the SLURM executor needs SLURM's client tools") from None
    if result.returncode != 0:
        raise ClusterError(f"sinfo failed, is the cluster up? {result.stderr.strip()}")
    partitions, default = parse_sinfo(result.stdout)
    user = getpass.getuser()
    accounts = None
    try:
        result = _run(["sacctmgr", "--noheader", "--parsable2", "list", "associations", f"user={user}",
                       "format=account"])
        if result.returncode == 0 and result.stdout.strip():
            accounts = frozenset(a.strip().lower() for a in result.stdout.split())
    except FileNotFoundError:
        pass
    return ClusterFacts(partitions=partitions, default_partition=default, accounts=accounts, user=user)


def check_requests(requests: Iterable[JobRequest], facts: ClusterFacts) -> list[str]:
    """Every problem of these requests on this cluster: a line per (key, value), naming the rules it hits."""
    problems: dict[str, list[str]] = {}

    def problem(text: str, rule: str) -> None:
        rules = problems.setdefault(text, [])
        if rule not in rules:
            rules.append(rule)

    known = ", ".join(sorted(facts.partitions)) or "none"
    for job in requests:
        if facts.accounts is not None and job.account and job.account.lower() not in facts.accounts:
            problem(
                f"{job.source('account')} = {job.account!r}: the cluster has no such account for user "
                f"{facts.user} (sacctmgr lists: {', '.join(sorted(facts.accounts))})",
                job.rule,
            )
        name = job.partition or facts.default_partition
        if name is None:
            continue
        partition = facts.partitions.get(name)
        if partition is None:
            problem(f"{job.source('partition')} = {name!r}: no such partition (sinfo lists: {known})",
                    job.rule)
            continue
        where = (f"partition {name!r} ({job.source('partition')})" if job.partition
                 else f"the default partition {name!r}")
        if job.gpus and not partition.gpus:
            problem(
                f"{job.source('gpus')} = {job.gpus} asks for GPUs, but {where} has none (sinfo gres: "
                f"{partition.gres})",
                job.rule,
            )
        elif job.gpus > partition.gpus:
            problem(f"{job.source('gpus')} = {job.gpus}: {where} has at most {partition.gpus} GPUs per node",
                    job.rule)
        if job.cpus > partition.cpus > 0:
            problem(f"{job.source('cpus')} = {job.cpus}: {where} has at most {partition.cpus} CPUs per node",
                    job.rule)
        if job.mem_mb and job.mem_mb > partition.mem_mb > 0:
            problem(f"{job.source('mem_mb')} = {job.mem_mb}: {where} has at most {partition.mem_mb} MB per "
                    "node", job.rule)
        limit = partition.max_runtime_min
        if job.runtime_min and limit is not None and job.runtime_min > limit:
            problem(f"{job.source('runtime_min')} = {job.runtime_min}: {where} allows at most {limit} "
                    "minutes", job.rule)
    return [f"{text} (rule{'s' if len(rules) > 1 else ''} {', '.join(sorted(rules))})"
            for text, rules in problems.items()]


def _request_of(job: Any, set_resources: Mapping[str, Mapping[str, Any]], experiment_file: str,
                partition_config: Path | None, logger: Any) -> JobRequest:
    """A Snakemake job (``job.rule.name``, ``job.resources``) as a JobRequest, each value with its key."""
    rule = job.rule.name
    resources = job.resources
    overridden = set_resources.get(rule, {})
    stage = resources.get("stage")
    if stage is None:
        raise ClusterError(f"rule {rule} has no 'stage' resource: a submitted rule asks for its resources "
                           "with job_resources(<stage>) (workflow/rules/common.smk; stages: "
                           f"{', '.join(STAGES)})")
    _known_stage(stage)

    def profile_key(name: str) -> str:
        if name in overridden:
            return f"set-resources: {rule}: {name}"
        return f"default-resources: {name}"

    def experiment_key(name: str, resource: str) -> str:
        if resource in overridden:
            return f"set-resources: {rule}: {resource}"
        return f"{experiment_file}: resources.{stage}.{name}"

    partition = resources.get("slurm_partition")
    partition_source = profile_key("slurm_partition")
    if not partition and partition_config is not None:
        # The plugin picks the partition from its partition file; ask it which one this job would get.
        from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

        partition = get_best_partition(read_partition_file(partition_config), job, logger)
        partition_source = f"slurm-partition-config {partition_config}: chosen partition"
    return JobRequest(
        rule=rule,
        account=resources.get("slurm_account"),
        partition=partition,
        gpus=int(resources.get("gpu", 0) or 0),
        cpus=int(resources.get("cpus_per_task", 1) or 1),
        mem_mb=resources.get("mem_mb"),
        runtime_min=resources.get("runtime"),
        sources={
            "account": profile_key("slurm_account"),
            "partition": partition_source,
            "gpus": experiment_key("gpus", "gpu"),
            "cpus": experiment_key("cpus", "cpus_per_task"),
            "mem_mb": experiment_key("mem_mb", "mem_mb"),
            "runtime_min": experiment_key("runtime_min", "runtime"),
        },
    )


def check_snakemake_jobs(jobs: Iterable[Any], set_resources: Mapping[str, Mapping[str, Any]],
                         experiment_file: str | Path, partition_config: Path | None = None,
                         logger: Any = None, facts: ClusterFacts | None = None) -> None:
    """Raise ClusterError listing every problem of these jobs on the cluster (``facts``: asked if None)."""
    facts = facts if facts is not None else query_cluster()
    requests = [_request_of(j, set_resources, str(experiment_file), partition_config, logger) for j in jobs]
    problems = check_requests(requests, facts)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ClusterError(
            f"the SLURM cluster would reject these jobs (nothing was submitted):\n{lines}\n"
            "Edit the account and partitions in profiles/slurm/ (or override them on the command line, "
            "e.g. --default-resources slurm_account=ACCOUNT slurm_partition=PARTITION) and the requests in "
            "the experiment's resources section."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Check one SLURM request against sinfo and sacctmgr.")
    parser.add_argument("--account")
    parser.add_argument("--partition")
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--mem-mb", type=int)
    parser.add_argument("--runtime-min", type=int)
    args = parser.parse_args(argv)
    request = JobRequest(rule="(command line)", account=args.account, partition=args.partition,
                         gpus=args.gpus, cpus=args.cpus, mem_mb=args.mem_mb, runtime_min=args.runtime_min,
                         sources={"account": "--account", "partition": "--partition", "gpus": "--gpus",
                                  "cpus": "--cpus", "mem_mb": "--mem-mb", "runtime_min": "--runtime-min"})
    try:
        facts = query_cluster()
        problems = check_requests([request], facts)
    except ClusterError as exc:
        raise SystemExit(f"error: {exc}") from None
    if problems:
        raise SystemExit("\n".join(f"error: {p}" for p in problems))
    print(f"ok: partitions {', '.join(sorted(facts.partitions))}; the request fits")


if __name__ == "__main__":
    main()
