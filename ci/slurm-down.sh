#!/usr/bin/env bash
# Stop the daemons started by ci/slurm-up.sh (slurmd, slurmctld, slurmdbd, mariadbd, munged), each by its pidfile.
# Configuration, controller state and the accounting database are kept; ci/slurm-up.sh starts them again.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "slurm-down: must run as root" >&2; exit 1; }

stop() { # stop <name> <pidfile> <comm>
    local pid i
    [ -s "$2" ] || { echo "slurm-down: $1 not running (no $2)"; return 0; }
    pid=$(cat "$2")
    if ! kill -0 "$pid" 2>/dev/null || ! grep -q "$3" "/proc/$pid/comm" 2>/dev/null; then
        echo "slurm-down: $1 not running (stale $2)"; rm -f "$2"; return 0
    fi
    kill "$pid"
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || { echo "slurm-down: stopped $1 ($pid)"; rm -f "$2"; return 0; }; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null; echo "slurm-down: killed $1 ($pid)"; rm -f "$2"
}

stop slurmd /run/slurmd.pid slurmd
stop slurmctld /run/slurmctld.pid slurmctld
stop slurmdbd /run/slurmdbd.pid slurmdbd
stop mariadbd /run/mysqld/mysqld.pid mariadbd
stop munged /run/munge/munged.pid munged
