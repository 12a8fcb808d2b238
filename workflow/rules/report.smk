# Stage 5: paper_tables/ and figures/ from result JSON files only (no model, no judge).


rule make_tables:
    input:
        exp=EXP_INPUT,
        sources=[data_record(group) for group in DATA_GROUPS],
        metrics=metric_files(),
        clustering=clustering_files(),
        calibration=calibration_files(),
        scores=score_files(),
        epsilon=epsilon_files(),
    output:
        reported_files(TABLES, "Tables", "csv"),
    params:
        config=config_params("model", "data", "elicit", "epsilon", "train", "evaluate", "analysis"),
        out=output_dir,
    conda:
        "../../environment.yml"
    log:
        f"logs/make_tables/{NAME}.log",
    benchmark:
        f"benchmarks/rules/make_tables/{NAME}.tsv"
    resources:
        **job_resources("default"),
    shell:
        "python -m ual.report tables --experiment {input.exp} --metrics {input.metrics}"
        " --clustering {input.clustering} --calibration {input.calibration} --scores {input.scores}"
        " --epsilon {input.epsilon} --data-sources {input.sources}"
        " --out {params.out} > {log} 2>&1"


rule make_figures:
    input:
        exp=EXP_INPUT,
        sources=[data_record(group) for group in DATA_GROUPS],
        metrics=metric_files(),
        clustering=clustering_files(),
        calibration=calibration_files(),
        train=train_metric_files(),
        tsne=tsne_files(),
        scores=score_files(),
    output:
        reported_files(FIGURES, "Figures", "png"),
    params:
        config=config_params("model", "data", "elicit", "epsilon", "train", "evaluate", "analysis"),
        out=output_dir,
    conda:
        "../../environment.yml"
    log:
        f"logs/make_figures/{NAME}.log",
    benchmark:
        f"benchmarks/rules/make_figures/{NAME}.tsv"
    resources:
        **job_resources("default"),
    shell:
        "python -m ual.report figures --experiment {input.exp} --metrics {input.metrics}"
        " --clustering {input.clustering} --calibration {input.calibration} --train {input.train}"
        " --tsne {input.tsne} --scores {input.scores} --data-sources {input.sources} --out {params.out}"
        " > {log} 2>&1"


for _artifact in (*TABLES, *FIGURES):  # a target rule per table and figure (ual.report.ARTIFACTS)

    rule:
        name:
            _artifact.name
        input:
            _artifact.files(NAME),
