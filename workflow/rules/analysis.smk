# Stage 4: token clustering of hidden states, SFT vs LS vs UAL.


rule cluster_hidden_states:
    input:
        unpack(cluster_inputs),
    output:
        metrics="results/{exp}/seed{seed}/analysis/{scenario}/clustering.json",
        tsne_png="results/{exp}/seed{seed}/analysis/{scenario}/tsne.png",
        tsne_pdf="results/{exp}/seed{seed}/analysis/{scenario}/tsne.pdf",
    params:
        config=config_params("model", "data", "analysis"),
        models=analysed_models_arg,
    conda:
        "../../environment.yml"
    resources:
        **job_resources("cluster_hidden_states"),
    log:
        "logs/cluster_hidden_states/{exp}/seed{seed}/{scenario}.log",
    benchmark:
        "benchmarks/rules/cluster_hidden_states/{exp}/seed{seed}/{scenario}.tsv"
    shell:
        "python -m ual.analysis.clustering --experiment {input.exp} --scenario {wildcards.scenario}"
        " --models {params.models} --out $(dirname {output.metrics}) > {log} 2>&1"
