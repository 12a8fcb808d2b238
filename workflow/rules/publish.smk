# Stage 6: the deliverables. Copies the report's tables and figures (results/<exp>/report/) into
# paper_tables/<exp>/ and figures/<exp>/ after comparing them with the files already there (on a fresh clone: the
# committed ones), and records the comparison in results/<exp>/published.json, the workflow's default target.
# The deliverables are not declared outputs: Snakemake would delete them before the job, and a fresh clone,
# which has them, would then plan nothing.


localrules:
    publish,


rule publish:
    input:
        tables=all_tables(),
        figures=all_figures(),
    output:
        f"results/{NAME}/published.json",
    params:
        tables_dest=TABLES[0].published_dir(NAME),
        figures_dest=FIGURES[0].published_dir(NAME),
    conda:
        "../../environment.yml"
    log:
        f"logs/publish/{NAME}.log",
    shell:
        "python -m ual.report.publish --tables {input.tables} --figures {input.figures}"
        " --tables-dest {params.tables_dest} --figures-dest {params.figures_dest} --out {output}"
        " 2>&1 | tee {log}"
