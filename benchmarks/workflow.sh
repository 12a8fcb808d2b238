#!/usr/bin/env bash
# Wall time of the tiny default from a clean results directory, and of the no-op rerun right after.
#   UAL_DATA_MIRROR=../shared/data bash benchmarks/workflow.sh      (about 30 minutes on 2 CPU cores)
# Keeps the elicitation cache (resources/cache/elicit) unless FRESH_CACHE=1; writes benchmarks/out/workflow.json.
set -euo pipefail
cd "$(dirname "$0")/.."
snakemake=".venv/bin/snakemake"
mkdir -p benchmarks/out
# the deliverables too: Snakemake does not rebuild missing intermediates while the targets exist
rm -rf results/tiny logs .snakemake/metadata paper_tables/tiny figures/tiny
if [ "${FRESH_CACHE:-0}" = 1 ]; then rm -rf resources/cache/elicit; fi
start=$(date +%s.%N)
"$snakemake" --cores all > benchmarks/out/workflow_full.log 2>&1
full=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
"$snakemake" --cores all > benchmarks/out/workflow_noop.log 2>&1
noop=$(echo "$(date +%s.%N) - $start" | bc)
grep -q "Nothing to be done" benchmarks/out/workflow_noop.log || { echo "the rerun was not a no-op" >&2; exit 1; }
jobs=$(grep -c "Finished jobid" benchmarks/out/workflow_full.log || true)
printf '{"experiment": "tiny", "jobs": %s, "full_run_s": %.1f, "noop_rerun_s": %.1f, "fresh_elicit_cache": %s, "cores": %s}\n' \
  "$jobs" "$full" "$noop" "${FRESH_CACHE:-0}" "$(nproc)" | tee benchmarks/out/workflow.json
echo "tiny default: $jobs jobs in ${full%.*} s; no-op rerun ${noop} s"
