# UAL reproduction workflow. Thin by design: targets and includes only; logic lives in ual/ and every rule
# runs `python -m ual.<stage>`.
#   snakemake --cores all                                         # tiny profile (default): every stage, then publish
#   snakemake --cores all table_main                              # one table (under results/<exp>/report/)
#   snakemake --cores all --config experiment=experiments/paper_llama2-7b.yaml   # another experiment file
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


envvars:
    "PATH",  # rules run the `python` of the environment that runs Snakemake (workflow/rules/common.smk)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/elicit.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/publish.smk"


rule all:
    default_target: True
    input:
        f"results/{NAME}/published.json",


rule tables:
    input:
        all_tables(),


rule figures:
    input:
        all_figures(),
