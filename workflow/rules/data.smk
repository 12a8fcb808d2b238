# Stage 0: the data, one job per data group (train, each task, references): every manifest file of the group
# is verified (size, sha256) in the mirror folder, and downloaded from its upstream repository at the pinned
# commit where absent (ual.data.fetch); the jobs that read the group take its sources record as input.


rule fetch_data:
    input:
        exp=EXP_INPUT,
    output:
        sources="results/{exp}/data/{group}.json",
    params:
        data=group_data_params,
    localrule: True
    conda:
        "../../environment.yml"
    log:
        "logs/fetch_data/{exp}/{group}.log",
    benchmark:
        "benchmarks/rules/fetch_data/{exp}/{group}.tsv"
    shell:
        "python -m ual.fetch --experiment {input.exp} --group {wildcards.group}"
        " --record {output.sources} > {log} 2>&1"
