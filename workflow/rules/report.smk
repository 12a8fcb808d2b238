# Stage 5: paper_tables/ and figures/ from result JSON files only (no model, no judge).


rule make_tables:
    input:
        exp=EXP_INPUT,
        sources=[data_record(group) for group in DATA_GROUPS],
        metrics=metric_files(),
        clustering=clustering_files(),
        calibration=calibration_files(),
        scores=score_files(),
    output:
        [report(f, caption=caption(f), category="Tables") if f.endswith(".csv") else f for f in all_tables()],
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
        **job_resources("make_tables"),
    shell:
        "python -m ual.report tables --experiment {input.exp} --metrics {input.metrics}"
        " --clustering {input.clustering} --calibration {input.calibration} --scores {input.scores}"
        " --data-sources {input.sources}"
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
        [report(f, caption=caption(f), category="Figures") if f.endswith(".png") else f for f in all_figures()],
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
        **job_resources("make_figures"),
    shell:
        "python -m ual.report figures --experiment {input.exp} --metrics {input.metrics}"
        " --clustering {input.clustering} --calibration {input.calibration} --train {input.train}"
        " --scores {input.scores} --data-sources {input.sources} --out {params.out}"
        " > {log} 2>&1"


for _target in TABLES:

    rule:
        name:
            _target
        input:
            [f"{REPORT_DIR}/tables/{_target}.{ext}" for ext in ("md", "csv", "tex")],


for _target in FIGURES:

    rule:
        name:
            _target
        input:
            [f"{REPORT_DIR}/figures/{_target}.{ext}" for ext in ("png", "pdf")],
