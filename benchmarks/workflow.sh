#!/usr/bin/env bash
# Wall time of the tiny default from a clean results directory, and of the no-op rerun right after.
#   UAL_DATA_MIRROR=../shared/data bash benchmarks/workflow.sh      (about 30 minutes on 2 CPU cores)
# Keeps the elicitation cache (resources/cache/elicit) unless FRESH_CACHE=1; writes benchmarks/out/workflow.json
# with the run's verdict on the committed tables (results/tiny/published.json: identical, or what differs).
set -euo pipefail
cd "$(dirname "$0")/.."
snakemake=".venv/bin/snakemake"
mkdir -p benchmarks/out
# the default target is results/tiny/published.json: a clean results/ reruns every job, and the rule publish
# compares the regenerated tables with paper_tables/tiny/ before copying them there
rm -rf results/tiny logs .snakemake/metadata
if [ "${FRESH_CACHE:-0}" = 1 ]; then rm -rf resources/cache/elicit; fi
start=$(date +%s.%N)
"$snakemake" --cores all > benchmarks/out/workflow_full.log 2>&1
full=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
"$snakemake" --cores all > benchmarks/out/workflow_noop.log 2>&1
noop=$(echo "$(date +%s.%N) - $start" | bc)
grep -q "Nothing to be done" benchmarks/out/workflow_noop.log || { echo "the rerun was not a no-op" >&2; exit 1; }
jobs=$(grep -c "Finished jobid" benchmarks/out/workflow_full.log || true)
identical=$(.venv/bin/python -c 'import json; print(json.load(open("results/tiny/published.json"))["tables_identical"] and "true" or "false")')
printf '{"experiment": "tiny", "jobs": %s, "full_run_s": %.1f, "noop_rerun_s": %.1f, "fresh_elicit_cache": %s, "cores": %s, "tables_identical": %s}\n' \
  "$jobs" "$full" "$noop" "${FRESH_CACHE:-0}" "$(nproc)" "$identical" | tee benchmarks/out/workflow.json
echo "tiny default: $jobs jobs in ${full%.*} s; no-op rerun ${noop} s"
