# Stage 4: one teacher-forced pass per model: token clustering of hidden states (SFT vs LS vs UAL) and the
# likelihood and calibration of held-out task references (every trained variant and the base model).


rule analyse_base_model:
    priority: 1  # scheduling only: the long teacher-forced passes before the many short evaluation jobs
    input:
        exp=EXP_INPUT,
        data=data_record("calibration"),
    output:
        calibration="results/{exp}/analysis/base/calibration.json",
        samples="results/{exp}/analysis/base/calibration_samples.npz",
    params:
        config=config_params("model", "data", "analysis"),
        # what the references' tokens depend on besides those sections
        max_length=EXP.train.max_length,
        math_split=EXP.evaluate.math_split,
        out=output_dir,
    conda:
        "../../environment.yml"
    resources:
        **job_resources("analysis"),
    log:
        "logs/analyse_base_model/{exp}.log",
    benchmark:
        "benchmarks/rules/analyse_base_model/{exp}.tsv"
    shell:
        "python -m ual.analysis --experiment {input.exp} --base-model --out {params.out} > {log} 2>&1"


rule analyse_models:
    priority: 1  # scheduling only: the long teacher-forced passes before the many short evaluation jobs
    input:
        unpack(analysis_inputs),
    output:
        metrics="results/{exp}/seed{seed}/analysis/{scenario}/clustering.json",
        tsne_png="results/{exp}/seed{seed}/analysis/{scenario}/tsne.png",
        tsne_pdf="results/{exp}/seed{seed}/analysis/{scenario}/tsne.pdf",
        calibration="results/{exp}/seed{seed}/analysis/{scenario}/calibration.json",
        samples="results/{exp}/seed{seed}/analysis/{scenario}/calibration_samples.npz",
    params:
        config=config_params("model", "data", "analysis"),
        max_length=EXP.train.max_length,
        math_split=EXP.evaluate.math_split,
        models=analysed_models_arg,
        cluster=clustered_models_arg,
        base=input_dir("base"),
        out=output_dir,
    conda:
        "../../environment.yml"
    resources:
        **job_resources("analysis"),
    log:
        "logs/analyse_models/{exp}/seed{seed}/{scenario}.log",
    benchmark:
        "benchmarks/rules/analyse_models/{exp}/seed{seed}/{scenario}.tsv"
    shell:
        "python -m ual.analysis --experiment {input.exp} --scenario {wildcards.scenario}"
        " --seed {wildcards.seed} --models {params.models} --cluster {params.cluster} --base {params.base}"
        " --out {params.out} > {log} 2>&1"
