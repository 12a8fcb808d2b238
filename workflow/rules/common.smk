# Shared workflow definitions: the experiment (validated by ual.experiment), wildcard constraints and the
# named input functions. No rules here.
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from ual.cluster import snakemake_resources
from ual.config import config_hash, resolved_config
from ual.experiment import check_judge, load_experiment
from ual import variants
from ual.methods import MAIN_TABLE_METHODS
from ual.provenance import sidecar_path
from ual.report import FIGURES, TABLES
from ual.scenarios import ablation_scenario
from ual.variants import Variant, epsilon_name_pattern, variant_pattern
from ual.inputs import data_groups, data_sources, data_trigger

# Rules run `python -m ual.<stage>`: make `python` the interpreter that runs Snakemake (the project's venv),
# also when snakemake is called as .venv/bin/snakemake without activating the environment.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

# The experiment is the file given with --configfile (default: the tiny profile). There is deliberately no
# `configfile:` directive: Snakemake would merge it with --configfile and mix two experiments.
# `--config experiment=FILE` names it too; then only ual.experiment reads it: Snakemake parses a --configfile
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
    """score_task's data: the groups the task's scoring reads (its items; AlpacaEval's reference outputs)."""
    from ual.inputs import task_data_groups

    return [data_record(group) for group in task_data_groups(EXP, wildcards.task)]


SEEDS = EXP.train.seeds
SCENARIOS = EXP.data.scenarios
TASKS = EXP.evaluate.tasks
MAIN_METHODS = [m for m in MAIN_TABLE_METHODS if m in EXP.train.methods]
ABLATION_SCENARIO = ablation_scenario(SCENARIOS)


wildcard_constraints:
    exp=re.escape(NAME),
    seed=r"\d+",
    scenario="|".join(SCENARIOS),
    variant=variant_pattern(),
    epsilon_name=epsilon_name_pattern(),
    task="|".join(TASKS),
    group="|".join(DATA_GROUPS),


def job_resources(stage):
    """What a job of `stage` (an entry of the experiment's `resources` section: train, generate, ...,
    default) asks its executor for (GPUs, CPUs, memory, wall time; ual.cluster.snakemake_resources); an
    unknown stage is an error naming the known ones. Profiles add only cluster facts (account, partitions)."""
    return snakemake_resources(EXP, stage)


def train_launcher(wildcards, resources):
    """One process, or one per GPU through torchrun (DeepSpeed and DDP both run under it): the GPU count is
    the job's own `gpu` resource, the same number SLURM allocates."""
    if resources.gpu > 1:
        return f"torchrun --standalone --nproc_per_node {resources.gpu}"
    return "python"


def smoothing_args(wildcards):
    """ual.smoothing's identity arguments for an epsilon file: the variant, and the training seed for a
    variant whose epsilon depends on it (ual_shuffled)."""
    variant, seed = Variant.parse_epsilon_name(wildcards.epsilon_name)
    return f"--variant {variant.name}" + ("" if seed is None else f" --seed {seed}")


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


def epsilon_files(wildcards=None):
    """The epsilon file of every trained variant and seed (one file serves all seeds of an unseeded one)."""
    names = {
        (scenario, Variant.parse(variant).epsilon_name(seed))
        for seed in SEEDS
        for scenario, variant in trained_variants()
    }
    return [f"results/{NAME}/epsilon/{scenario}/{name}.jsonl" for scenario, name in sorted(names)]


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


def scores_file(source):
    """The scores file of an uncertainty source: elicit.method's scores.jsonl (rule elicit_scores), another
    source's scores.<source>.jsonl (rule elicit_compare_scores)."""
    if source == EXP.elicit.method:
        return f"results/{NAME}/elicit/scores.jsonl"
    return f"results/{NAME}/elicit/scores.{source}.jsonl"


def score_files():
    """The elicited scores the report reads: elicit.method's, each compared source's, epsilon.source's."""
    return [scores_file(source) for source in EXP.scored_sources]


def sidecar(path):
    """The sidecar of a result file, declared as an output beside it (ual.provenance.sidecar_path)."""
    return str(sidecar_path(path))


def output_dir(wildcards, output):
    """The folder of a rule's first output (for CLIs that write several files there)."""
    return str(Path(output[0]).parent)


def input_dir(name):
    """A params function: the folder of input `name` (a CLI that reads a model or result folder)."""
    return lambda wildcards, input: str(Path(input[name]).parent)


# The report rules write under results/<exp>/report/ (absent from a fresh clone, so `snakemake` plans the whole
# DAG there: ual.report.Artifact.files); the rule `publish` (workflow/rules/publish.smk) copies them into
# paper_tables/<exp>/ and figures/<exp>/ (Artifact.published_dir).


def all_tables():
    """Every file of every table of ual.report.ARTIFACTS (md, csv, tex, provenance sidecar)."""
    return [path for table in TABLES for path in table.files(NAME)]


def all_figures():
    """Every file of every figure of ual.report.ARTIFACTS (png, pdf)."""
    return [path for figure in FIGURES for path in figure.files(NAME)]


def reported_files(artifacts, category, extension):
    """Outputs of the rule that writes `artifacts`; each one's `extension` file is shown in the HTML report
    (`snakemake --report`) with its caption (workflow/report/captions/<name>.rst; a rule's caption path is
    relative to the file the rule is in, workflow/rules/)."""
    outputs = []
    for artifact in artifacts:
        caption = os.path.relpath(artifact.caption, "workflow/rules")
        outputs += [report(f, caption=caption, category=category) if f.endswith(f".{extension}") else f
                    for f in artifact.files(NAME)]
    return outputs
