#!/usr/bin/env bash
# Stop the test cluster that .ci/slurm-up.sh started in RUN_DIR: cancel its jobs, then each daemon by the PID
# recorded there (slurmd, slurmctld, slurmdbd, MariaDB, munge), SIGTERM, then SIGKILL after 20 s. Nothing else
# is signalled, and a PID only while it still runs the program that was started under it.
#   .ci/slurm-down.sh [RUN_DIR]   (default /tmp/ual-slurm; RUN_DIR itself is kept, with its logs)
# A stopped daemon may stay behind as a zombie where PID 1 does not reap orphans (this sandbox): it holds no
# port, file or memory, and counts as stopped.
set -uo pipefail

run=${1:-/tmp/ual-slurm}
declare -A program=([slurmd]=slurmd [slurmctld]=slurmctld [slurmdbd]=slurmdbd [mariadb]=mariadbd
                    [munged]=munged)

alive() {  # running (not a zombie) and still the program we started
    local pid=$1 name=$2 state
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

# Jobs first, while the controller runs: their processes (slurmstepd and below) would outlive slurmd.
if [ -f "$run/slurmctld.pid" ] && alive "$(cat "$run/slurmctld.pid")" slurmctld; then
    export SLURM_CONF=$run/slurm.conf
    scancel --quiet --user="$(id -un)" 2>/dev/null
    for _ in $(seq 100); do [ -z "$(squeue --noheader 2>/dev/null)" ] && break; sleep 0.2; done
fi

status=0
for daemon in slurmd slurmctld slurmdbd mariadb munged; do
    pidfile=$run/$daemon.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if alive "$pid" "${program[$daemon]}"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do alive "$pid" "${program[$daemon]}" || break; sleep 0.2; done
        if alive "$pid" "${program[$daemon]}"; then
            echo "slurm-down: $daemon ($pid) ignored SIGTERM, killing it" >&2
            kill -KILL "$pid" 2>/dev/null
            sleep 0.5
            if alive "$pid" "${program[$daemon]}"; then
                echo "slurm-down: $daemon ($pid) still runs" >&2
                status=1
            fi
        fi
    fi
    rm -f "$pidfile"
done
# The link slurm-up.sh made, if it is still ours.
ours=$(cd "$run" 2>/dev/null && pwd)/slurm.conf
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" != "$ours" ] || rm -f /etc/slurm/slurm.conf
exit $status
