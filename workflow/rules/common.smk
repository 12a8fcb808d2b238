# Shared workflow definitions: the experiment (validated by ual.config), wildcard constraints and the
# named input functions. No rules here.
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from ual.cluster import snakemake_resources
from ual.config import MAIN_TABLE_METHODS, check_judge, config_hash, load_experiment, resolved_config
from ual import variants
from ual.variants import EPSILON_NAME_PATTERN, VARIANT_PATTERN, Variant, ablation_scenario
from ual.inputs import data_groups, data_sources, data_trigger

# Rules run `python -m ual.<stage>`: make `python` the interpreter that runs Snakemake (the project's venv),
# also when snakemake is called as .venv/bin/snakemake without activating the environment.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

# The experiment is the file given with --configfile (default: the tiny profile). There is deliberately no
# `configfile:` directive: Snakemake would merge it with --configfile and mix two experiments.
# `--config experiment=FILE` names it too, and then only ual.config reads it: Snakemake parses a --configfile
# in its command line, before this file runs, and reports a YAML syntax error there without file or line.
if "experiment" in config:
    EXPERIMENT_FILE = Path(config["experiment"])
elif workflow.overwrite_configfiles:
    EXPERIMENT_FILE = Path(workflow.overwrite_configfiles[-1]).resolve()
    if EXPERIMENT_FILE.is_relative_to(Path.cwd().resolve()):
        EXPERIMENT_FILE = EXPERIMENT_FILE.relative_to(Path.cwd().resolve())
else:
    EXPERIMENT_FILE = Path("experiments/tiny.yaml")
    config.update(yaml.safe_load(EXPERIMENT_FILE.read_text()))

# Strict, typed validation with the file and key named (unknown keys, wrong types, missing knobs)...
EXP = load_experiment(EXPERIMENT_FILE)
if workflow.is_main_process:  # the judge once per run (ual.judges is slow to import), not again in each job
    check_judge(EXP, EXPERIMENT_FILE)
# ...and the exported JSON Schema kept honest against the same config.
validate(resolved_config(EXP, with_name=False), "../schemas/experiment.schema.json")

# All rules take the experiment file as input, but `ancient`, so its mtime alone reruns nothing. What a stage
# reads of it is tracked through a hash of those sections in `params` (rerun trigger "params"), so editing
# evaluate.max_new_tokens reruns generation and scoring and leaves the trained models alone.
EXP_INPUT = ancient(str(EXPERIMENT_FILE))
SECTION_HASHES = {
    name: config_hash(getattr(EXP, name)) for name in type(EXP).model_fields if name not in ("name", "description")
}


def config_params(*sections):
    """A params value that changes exactly when one of these experiment sections changes."""
    return " ".join(f"{name}={SECTION_HASHES[name]}" for name in sections)


NAME = EXP.name

# The data a job reads is part of its rerun trigger too. The data fall into groups (ual.inputs: train, one per
# task, references), one fetch_data job each, which verifies (and on first use downloads) the group's mirror
# files and writes results/<exp>/data/<group>.json. Its params are the group's sources: each mirror file's
# sha256 as found (the manifest's until fetched) and each hub id and revision. A job that reads a group takes
# its record file as input, so a changed data file reruns the group's fetch_data job and, through that
# dependency, exactly the jobs that read the group.
DATA_SOURCES = data_sources(EXP)
DATA_GROUPS = data_groups(EXP)


def data_record(group):
    return f"results/{NAME}/data/{group}.json"


def group_data_params(wildcards):
    """fetch_data's params: the sources of its group (they change exactly when a file of it changes)."""
    return data_trigger(DATA_SOURCES, wildcards.group)


def scored_data(wildcards):
    """score_task's data: the task's items and, for AlpacaEval, the reference outputs."""
    references = [data_record("references")] if wildcards.task == "alpacaeval" else []
    return [data_record(wildcards.task), *references]


SEEDS = EXP.train.seeds
SCENARIOS = EXP.data.scenarios
TASKS = EXP.evaluate.tasks
MAIN_METHODS = [m for m in MAIN_TABLE_METHODS if m in EXP.train.methods]
ABLATION_SCENARIO = ablation_scenario(SCENARIOS)


wildcard_constraints:
    exp=re.escape(NAME),
    seed=r"\d+",
    scenario="|".join(SCENARIOS),
    variant=VARIANT_PATTERN,
    epsilon_name=EPSILON_NAME_PATTERN,
    task="|".join(TASKS),
    group="|".join(DATA_GROUPS),


def job_resources(rule):
    """What a job of `rule` asks its executor for (GPUs, CPUs, memory, wall time): the experiment's
    `resources` section (ual.cluster.snakemake_resources). Profiles add only cluster facts (account,
    partitions)."""
    return snakemake_resources(EXP, rule)


def train_launcher(wildcards, resources):
    """One process, or one per GPU through torchrun (DeepSpeed and DDP both run under it): the GPU count is
    the job's own `gpu` resource, the same number SLURM allocates."""
    if resources.gpu > 1:
        return f"torchrun --standalone --nproc_per_node {resources.gpu}"
    return "python"


def variant_method(wildcards):
    """The training method of a variant: ual_epsmax0.3 is UAL with another eps_max."""
    return Variant.parse(wildcards.variant).method


def smoothing_args(wildcards):
    """ual.smoothing arguments for an epsilon file: the method, eps_max for the ablation sweep, and the
    training seed for a variant whose epsilon depends on it (ual_shuffled)."""
    variant, seed = Variant.parse_epsilon_name(wildcards.epsilon_name)
    eps_max = "" if variant.eps_max is None else f" --eps-max {variant.eps_max:g}"
    return f"--method {variant.method}{eps_max}" + ("" if seed is None else f" --seed {seed}")


def epsilon_file(wildcards):
    """The epsilon file a training run reads: one per variant, one per seed for ual_shuffled."""
    name = Variant.parse(wildcards.variant).epsilon_name(int(wildcards.seed))
    return f"results/{wildcards.exp}/epsilon/{wildcards.scenario}/{name}.jsonl"


def trained_variants():
    """(scenario, variant) pairs that are trained: the main methods everywhere, the ablation once."""
    eps = EXP.epsilon
    grid = variants.trained_variants(SCENARIOS, EXP.train.methods, eps.eps_max, eps.ablation_eps_max)
    return [(scenario, variant.name) for scenario, variant in grid]


def metric_files(wildcards=None):
    return [
        f"results/{NAME}/seed{seed}/evaluate/{scenario}/{variant}/{task}.json"
        for seed in SEEDS
        for scenario, variant in trained_variants()
        for task in TASKS
    ]


def clustering_files(wildcards=None):
    return [f"results/{NAME}/seed{seed}/analysis/{scenario}/clustering.json" for seed in SEEDS for scenario in SCENARIOS]


def calibration_files(wildcards=None):
    return [f"results/{NAME}/seed{seed}/analysis/{scenario}/calibration.json" for seed in SEEDS for scenario in SCENARIOS]


def tsne_files(wildcards=None):
    """The t-SNE figure of the ablation scenario, which becomes fig_clusters."""
    return [f"results/{NAME}/seed{SEEDS[0]}/analysis/{ABLATION_SCENARIO}/tsne.{ext}" for ext in ("png", "pdf")]


def train_metric_files(wildcards=None):
    return [
        f"results/{NAME}/seed{seed}/train/{scenario}/{variant}/train_metrics.json"
        for seed in SEEDS
        for scenario, variant in trained_variants()
    ]


def scenario_variants(scenario):
    """The variants trained on a scenario, main methods first (sft: the reference of the differences)."""
    return [v for s, v in trained_variants() if s == scenario]


def analysis_inputs(wildcards):
    """The experiment file, the data records (training data: clustering's held-out records; calibration
    references), the base model's analysis and every model trained on the scenario (model_<variant>)."""
    models = {
        f"model_{v}": f"results/{NAME}/seed{wildcards.seed}/train/{wildcards.scenario}/{v}/train_metrics.json"
        for v in scenario_variants(wildcards.scenario)
    }
    data = [data_record("train"), data_record("calibration")]
    return {"exp": EXP_INPUT, "data": data, "base": f"results/{NAME}/analysis/base/calibration.json", **models}


def analysed_models_arg(wildcards, input):
    """`sft=DIR ls=DIR ual=DIR ...` (every variant of the scenario) for python -m ual.analysis --models."""
    return " ".join(f"{v}={Path(input[f'model_{v}']).parent}" for v in scenario_variants(wildcards.scenario))


def clustered_models_arg(wildcards):
    """The models whose hidden states are clustered: the main methods (sft ls ual)."""
    return " ".join(MAIN_METHODS)


def score_files():
    """The elicited scores the report reads: elicit.method's (epsilon's), then each compared source's."""
    compared = [f"results/{NAME}/elicit/scores.{m}.jsonl" for m in EXP.analysis.compare_uncertainty]
    return [f"results/{NAME}/elicit/scores.jsonl", *compared]


def output_dir(wildcards, output):
    """The folder of a rule's first output (for CLIs that write several files there)."""
    return str(Path(output[0]).parent)


TABLES = ["table_main", "table_ablation", "table_crosscheck", "table_clustering", "table_calibration",
          "table_uncertainty"]
FIGURES = ["fig_uncertainty", "fig_clusters", "fig_ablation", "fig_loss", "fig_calibration"]


# The report rules write under results/<exp>/report/ (absent from a fresh clone, so `snakemake` plans the whole
# DAG there); the rule `publish` (workflow/rules/publish.smk) copies them into paper_tables/<exp>/, figures/<exp>/.
REPORT_DIR = f"results/{NAME}/report"


def all_tables():
    return [f"{REPORT_DIR}/tables/{t}.{ext}" for t in TABLES for ext in ("md", "csv", "tex", "provenance.json")]


def all_figures():
    return [f"{REPORT_DIR}/figures/{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]


def caption(path):
    """The caption of a table or figure in `snakemake --report`: workflow/report/captions/<name>.rst."""
    return f"../report/captions/{Path(path).name.split('.')[0]}.rst"
