# Stage 3: generate answers for each benchmark, then score them (MetaMath protocol; alpaca_eval's judges).


rule generate_outputs:
    input:
        exp=EXP_INPUT,
        data="results/{exp}/data/{task}.json",
        model="results/{exp}/seed{seed}/train/{scenario}/{variant}/train_metrics.json",
    output:
        outputs="results/{exp}/seed{seed}/generate/{scenario}/{variant}/{task}.json",
        # declared, so Snakemake removes it with the outputs when the job reruns or fails (never stale);
        # the resume file <outputs>.partial.jsonl is deliberately not (see ual.generate)
        meta=sidecar("results/{exp}/seed{seed}/generate/{scenario}/{variant}/{task}.json"),
    params:
        config=config_params("model", "data", "evaluate"),
        model=input_dir("model"),
    conda:
        "../../environment.yml"
    log:
        "logs/generate_outputs/{exp}/seed{seed}/{scenario}/{variant}/{task}.log",
    benchmark:
        "benchmarks/rules/generate_outputs/{exp}/seed{seed}/{scenario}/{variant}/{task}.tsv"
    resources:
        **job_resources("generate"),
    shell:
        "python -m ual.generate --experiment {input.exp} --model {params.model} --task {wildcards.task}"
        " --scenario {wildcards.scenario} --variant {wildcards.variant} --seed {wildcards.seed}"
        " --out {output.outputs} > {log} 2>&1"


rule score_task:
    input:
        exp=EXP_INPUT,
        data=scored_data,
        outputs="results/{exp}/seed{seed}/generate/{scenario}/{variant}/{task}.json",
        # read for the model's provenance
        meta=sidecar("results/{exp}/seed{seed}/generate/{scenario}/{variant}/{task}.json"),
    output:
        metrics="results/{exp}/seed{seed}/evaluate/{scenario}/{variant}/{task}.json",
    params:
        config=config_params("data", "evaluate"),
    conda:
        "../../environment.yml"
    log:
        "logs/score_task/{exp}/seed{seed}/{scenario}/{variant}/{task}.log",
    benchmark:
        "benchmarks/rules/score_task/{exp}/seed{seed}/{scenario}/{variant}/{task}.tsv"
    resources:
        **job_resources("evaluate"),
    shell:
        "python -m ual.evaluate --experiment {input.exp} --task {wildcards.task} --outputs {input.outputs}"
        " --scenario {wildcards.scenario} --variant {wildcards.variant} --seed {wildcards.seed}"
        " --out {output.metrics} > {log} 2>&1"
