# Stage 1: an uncertainty score per training sample (cached by content), then epsilon per variant (and per
# training seed for ual_shuffled: the file name is Variant.epsilon_name, see ual/variants.py), from the
# scores of epsilon.source (null: elicit.method). The sources of analysis.compare_uncertainty are scored by
# the same elicitor for table_uncertainty.


rule elicit_scores:
    input:
        exp=EXP_INPUT,
        data="results/{exp}/data/train.json",
    output:
        scores="results/{exp}/elicit/scores.jsonl",
    params:
        config=config_params("data", "elicit"),
    conda:
        "../../environment.yml"
    log:
        "logs/elicit_scores/{exp}.log",
    benchmark:
        "benchmarks/rules/elicit_scores/{exp}.tsv"
    resources:
        **job_resources("elicit"),
    shell:
        "python -m ual.elicit --experiment {input.exp} --out {output.scores} > {log} 2>&1"


rule elicit_compare_scores:
    input:
        exp=EXP_INPUT,
        data="results/{exp}/data/train.json",
    output:
        scores="results/{exp}/elicit/scores.{source}.jsonl",
    wildcard_constraints:
        source="verbalized|entropy",
    params:
        config=config_params("data", "elicit"),
    conda:
        "../../environment.yml"
    log:
        "logs/elicit_compare_scores/{exp}/{source}.log",
    benchmark:
        "benchmarks/rules/elicit_compare_scores/{exp}/{source}.tsv"
    resources:
        **job_resources("elicit"),
    shell:
        "python -m ual.elicit --experiment {input.exp} --source {wildcards.source} --out {output.scores}"
        " > {log} 2>&1"


rule map_epsilon:
    input:
        exp=EXP_INPUT,
        data="results/{exp}/data/train.json",
        scores=scores_file(EXP.epsilon_source),  # epsilon.source (null: elicit.method)
    output:
        epsilon="results/{exp}/epsilon/{scenario}/{epsilon_name}.jsonl",
        meta=sidecar("results/{exp}/epsilon/{scenario}/{epsilon_name}.jsonl"),  # removed with it on a rerun
    params:
        config=config_params("data", "elicit", "epsilon"),
        args=smoothing_args,
    conda:
        "../../environment.yml"
    log:
        "logs/map_epsilon/{exp}/{scenario}/{epsilon_name}.log",
    benchmark:
        "benchmarks/rules/map_epsilon/{exp}/{scenario}/{epsilon_name}.tsv"
    resources:
        **job_resources("default"),
    shell:
        "python -m ual.smoothing --experiment {input.exp} --scores {input.scores}"
        " --scenario {wildcards.scenario} {params.args} --out {output.epsilon} > {log} 2>&1"
