#!/usr/bin/env bash
# Overhead of the SLURM executor: one target of tests/fixtures/smoke.yaml run locally (--cores 2) and then
# through the single-node test cluster (.ci/slurm-up.sh, profiles/slurm, account and partition on the command
# line), each from a fresh working directory, side by side in one run. Also the jobs' own run time (sacct).
#   sudo UAL_DATA_MIRROR=../shared/data bash benchmarks/slurm.sh                 (the 5-job chain, ~5 min)
#   sudo UAL_DATA_MIRROR=../shared/data TARGET=all bash benchmarks/slurm.sh      (all 44 jobs)
# Writes benchmarks/out/slurm_<target>.json; the test cluster lives in /tmp/ual-slurm-bench and is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python=${PYTHON:-$repo/.venv/bin/python}
target=${TARGET:-results/smoke/seed0/evaluate/mixed/sft/alpacaeval.json}
name=$(basename "${target%.*}")
run=/tmp/ual-slurm-bench
work=$(mktemp -d /tmp/ual-slurm-bench-work.XXXXXX)
mkdir -p benchmarks/out
export UAL_MODEL_CACHE=${UAL_MODEL_CACHE:-$repo/resources/models}
export UAL_DATA_MIRROR=$(realpath "$UAL_DATA_MIRROR")
trap '.ci/slurm-down.sh "$run"' EXIT

now() { date +%s.%N; }
smoke() {  # smoke DIR ARGS...: the target in a fresh working directory DIR
    local dir=$1; shift
    mkdir -p "$dir/experiments" && cp tests/fixtures/smoke.yaml "$dir/experiments/"
    (cd "$dir" && "$python" -m snakemake --snakefile "$repo/Snakefile" --directory "$dir" \
        --configfile "$dir/experiments/smoke.yaml" "$@" -- "$target" > "$dir/run.log" 2>&1)
}

start=$(now)
.ci/slurm-up.sh "$run" > /dev/null
up=$(echo "$(now) - $start" | bc)

start=$(now)
smoke "$work/local" --cores 2
local_s=$(echo "$(now) - $start" | bc)

start=$(now)
smoke "$work/slurm" --profile "$repo/profiles/slurm" \
    --default-resources slurm_account=ualtest slurm_partition=debug
slurm_s=$(echo "$(now) - $start" | bc)

run_id=$(grep -o 'SLURM run ID: \S*' "$work/slurm/run.log" | cut -d' ' -f4)
jobs=$(sacct -X -n -P -S now-1days --name="$run_id" -o State | grep -c COMPLETED)
job_s=$(sacct -X -n -P -S now-1days --name="$run_id" -o ElapsedRaw | paste -sd+ | bc)
load=$(cut -d' ' -f1-3 /proc/loadavg)
out=benchmarks/out/slurm_$name.json
printf '{"target": "%s", "jobs_completed": %s, "local_cores2_s": %.1f, "slurm_s": %.1f, "ratio": %.2f, ' \
    "$target" "$jobs" "$local_s" "$slurm_s" "$(echo "$slurm_s / $local_s" | bc -l)" > "$out"
printf '"slurm_jobs_own_time_s": %s, "cluster_up_s": %.1f, "cpus": %s, "loadavg_after": "%s"}\n' \
    "$job_s" "$up" "$(nproc)" "$load" >> "$out"
cat "$out"
rm -rf "$work"
