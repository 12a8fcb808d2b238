#!/usr/bin/env bash
# A new user's run, timed: a fresh clone of this repository's HEAD into a temporary folder, README command 1
# there (./install.sh, then .venv/bin/snakemake --cores all) with UAL_DATA_MIRROR unset, the data served by a
# local raw-file server with the upstream <owner>/<repo>/<commit>/<path> layout (UAL_DATA_BASE_URL) into an
# empty cache, then the same snakemake again (must be "Nothing to be done"), and the publish verdict.
#   bash benchmarks/fresh_clone.sh ../shared/data      (about 30 minutes on 2 CPU cores; writes nothing here)
set -euo pipefail
mirror=$(realpath "${1:?usage: benchmarks/fresh_clone.sh MIRROR_FOLDER (the data files, served locally)}")
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
git clone -q "$repo" "$work/clone"
"$repo/.venv/bin/python" - "$mirror" "$work/raw" <<'PY'
import sys
from pathlib import Path
from ual.data import MANIFEST
mirror, root = Path(sys.argv[1]), Path(sys.argv[2])
for entry in MANIFEST.values():
    link = root / entry.repository / entry.commit / entry.path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to((mirror / entry.name).resolve())
PY
port=8765
(cd "$work/raw" && exec python3 -m http.server "$port" --bind 127.0.0.1 > "$work/server.log" 2>&1) &
server=$!
trap 'kill $server' EXIT
cd "$work/clone"
export XDG_CACHE_HOME="$work/cache" UAL_DATA_BASE_URL="http://127.0.0.1:$port"
unset UAL_DATA_MIRROR PYTHONPATH || true
start=$(date +%s); ./install.sh > "$work/install.log" 2>&1; install=$(( $(date +%s) - start ))
start=$(date +%s); .venv/bin/snakemake --cores all > "$work/run.log" 2>&1; full=$(( $(date +%s) - start ))
start=$(date +%s); .venv/bin/snakemake --cores all > "$work/noop.log" 2>&1; noop=$(( $(date +%s) - start ))
grep -q "Nothing to be done" "$work/noop.log" || { echo "the second run was not a no-op" >&2; exit 1; }
echo "install ${install} s; $(grep -c 'Finished jobid' "$work/run.log") jobs in ${full} s; second run ${noop} s"
head -5 "logs/publish/$(ls logs/publish | head -1)"
echo "(the clone, its logs and results: $work)"
