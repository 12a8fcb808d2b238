# Stage 2: SFT, LS and UAL (and the ablation variants) with HF Trainer, under DeepSpeed when configured.


rule train_model:
    # scheduling only: models first, so that their analyses and evaluations fill both cores to the end
    priority: 2
    input:
        exp=EXP_INPUT,
        data="results/{exp}/data/train.json",
        epsilon=epsilon_file,
    output:
        metrics="results/{exp}/seed{seed}/train/{scenario}/{variant}/train_metrics.json",
    params:
        config=config_params("model", "data", "train"),
        out=output_dir,
        launcher=train_launcher,
    conda:
        "../../environment.yml"
    log:
        "logs/train_model/{exp}/seed{seed}/{scenario}/{variant}.log",
    benchmark:
        "benchmarks/rules/train_model/{exp}/seed{seed}/{scenario}/{variant}.tsv"
    resources:
        **job_resources("train"),
    shell:
        "{params.launcher} -m ual.train --experiment {input.exp} --scenario {wildcards.scenario}"
        " --variant {wildcards.variant} --seed {wildcards.seed} --epsilon {input.epsilon} --out {params.out}"
        " > {log} 2>&1"
