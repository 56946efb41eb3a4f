#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster (with slurmdbd accounting) on this host, for CI and local tests of
# profiles/slurm (snakemake-executor-plugin-slurm). Debian 12, run as root; no systemd needed (daemons are started
# directly). Idempotent: when everything is already up it only verifies; when the generated config changed it restarts
# slurmctld/slurmd (and slurmdbd) with the new one.
#
#   sudo ci/slurm-up.sh            # install (apt), configure, start, wait until the node is idle, print sinfo
#   sudo ci/slurm-down.sh          # stop all daemons again (config and accounting DB are kept)
#
# Why accounting (slurmdbd + MariaDB): the plugin queries job states with `sacct ... --clusters all --name <run-uuid>`
# (its default whenever `sacct` is on PATH, which slurm-client always installs), validates every `slurm_account` with
# `sacctmgr -n -s list user $USER format=account` (falling back to `sshare`), and guesses an account from `sacct`
# when none is given. Without slurmdbd those calls fail, so the cluster must have real accounting.
#
# Environment (all optional):
#   SLURM_NODE_CPUS     CPUs the node declares (default 16). More than the machine has is fine: slurmd runs with
#                       SlurmdParameters=config_overrides, so a GPU-profile job (--cpus-per-task 8) is schedulable on a
#                       2-core CI machine; jobs then share the real cores. Set "real" to declare the real count (nproc).
#   SLURM_NODE_MEM_MB   memory the node declares, MB (default 64000, the largest request in profiles/slurm; no memory
#                       is enforced: no cgroups). "real" = what the machine has (free -m, minus 512 MB).
#   SLURM_NODE_GPUS     fake GRES gpu the node declares (default 4; 0 = no GRES): File= symlinks to /dev/null, so
#                       jobs asking --gres=gpu:1 / --gpus=1 are accepted and run (CUDA_VISIBLE_DEVICES is set), but no
#                       GPU exists.
#   SLURM_CLUSTER_NAME  ClusterName (default ci)
#   SLURM_ACCOUNTS      accounts created, root is associated with each (default "kronbench myaccount"; the first is
#                       root's default account)
#   SLURM_UP_TIMEOUT    seconds to wait for each daemon / the idle node (default 60)
#   SLURM_SKIP_APT=1    do not run apt-get (packages already installed)
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "slurm-up: must run as root" >&2; exit 1; }

NODE=$(hostname -s)
CLUSTER=${SLURM_CLUSTER_NAME:-ci}
ACCOUNTS=${SLURM_ACCOUNTS:-kronbench myaccount}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
CPUS=${SLURM_NODE_CPUS:-16}
MEM=${SLURM_NODE_MEM_MB:-64000}
GPUS=${SLURM_NODE_GPUS:-4}
[ "$CPUS" = real ] && CPUS=$(nproc)
[ "$MEM" = real ] && MEM=$(( $(free -m | awk '/^Mem:/{print $2}') - 512 ))

ETC=/etc/slurm
LOG=/var/log/slurm
SPOOL=/var/spool/slurm
DBPASS=slurmci   # local-only MariaDB user of slurmdbd (socket connection); not a secret
T0=$(date +%s)

log() { echo "slurm-up [$(( $(date +%s) - T0 ))s]: $*"; }

dump_logs() {
    echo "==== slurm-up failed; daemon logs ====" >&2
    for f in /var/log/munge/munged.log $LOG/mariadb.log $LOG/slurmdbd.log $LOG/slurmctld.log $LOG/slurmd.log; do
        [ -f "$f" ] && { echo "---- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; }
    done
    ps -eo pid,user,args | grep -E '[m]unged|[m]ariadbd|[s]lurm' >&2 || true
}
die() { echo "slurm-up: ERROR: $*" >&2; dump_logs; exit 1; }

# running <pidfile> <comm>: the process of a pidfile is alive and is that program
running() {
    local pid
    [ -s "$1" ] && pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        grep -q "$2" "/proc/$pid/comm" 2>/dev/null
}
# wait_for <what> <command...>: retry a check for up to $TIMEOUT s
wait_for() {
    local what=$1; shift
    local i
    for ((i = 0; i < TIMEOUT * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    die "timed out after ${TIMEOUT}s waiting for $what"
}
stop_pidfile() { # stop_pidfile <pidfile> <comm>
    local pid i
    running "$1" "$2" || return 0
    pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}
# install_file <path> <mode> <owner>: content from stdin; returns 0 if the file changed
install_file() {
    local tmp; tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
    install -m "$2" -o "$3" "$tmp" "$1"; rm -f "$tmp"; return 0
}

# ---------------------------------------------------------------- packages
PKGS="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
if [ "${SLURM_SKIP_APT:-0}" != 1 ]; then
    missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"; done)
    if [ -n "$missing" ]; then
        log "installing $(echo $missing)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # policy-rc.d: do not let the maintainer scripts try to start services (no systemd here anyway)
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
        apt-get install -y -qq --no-install-recommends $missing >/tmp/slurm-up-apt.log 2>&1 ||
            { rm -f /usr/sbin/policy-rc.d; cat /tmp/slurm-up-apt.log >&2; die "apt-get install failed"; }
        rm -f /usr/sbin/policy-rc.d
        log "packages installed"
    fi
fi

# ---------------------------------------------------------------- config
mkdir -p $ETC $LOG $SPOOL/ctld $SPOOL/d /run/munge /var/log/munge /var/lib/munge /run/mysqld
chown munge:munge /run/munge /var/log/munge /var/lib/munge; chmod 0755 /run/munge
chown mysql:mysql /run/mysqld

changed_ctl=0; changed_dbd=0
GRES_LINE=""; GRESTYPES=""
if [ "$GPUS" -gt 0 ]; then GRES_LINE=" Gres=gpu:$GPUS"; GRESTYPES="GresTypes=gpu"; fi

install_file $ETC/slurm.conf 0644 root <<EOF && changed_ctl=1
# generated by ci/slurm-up.sh -- single-node CI cluster
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups (container, no systemd): track processes via /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# declared CPUs/memory may exceed the machine (SLURM_NODE_CPUS/_MEM_MB): do not drain the node for it
SlurmdParameters=config_overrides
ReturnToService=2
# reject at submission what the node can never run (else such a job pends forever with Reason=PartitionConfig)
EnforcePartLimits=ALL
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
$GRESTYPES
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM$GRES_LINE State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

if [ "$GPUS" -gt 0 ]; then
    # Fake GPUs. A count-only "Name=gpu Count=N" does NOT work in Slurm 22.05: slurmd logs "Removing file-less GPU
    # gpu:(null) from final GRES list", reports 0 GPUs, and slurmctld drains the node ("gres/gpu count reported lower
    # than configured (0 < N)"). So each GPU gets a File=, a symlink to /dev/null (slurmd requires a character device;
    # a regular file gives "is not a valid character or block device"). Without cgroups nothing is bound to it.
    rm -rf $SPOOL/fakegpu; mkdir -p $SPOOL/fakegpu
    for ((i = 0; i < GPUS; i++)); do ln -s /dev/null $SPOOL/fakegpu/nvidia$i; done
    install_file $ETC/gres.conf 0644 root <<EOF && changed_ctl=1
# fake GPUs for CI (symlinks to /dev/null): schedulable, not real
AutoDetect=off
NodeName=$NODE Name=gpu File=$SPOOL/fakegpu/nvidia[0-$((GPUS - 1))]
EOF
else
    [ -f $ETC/gres.conf ] && { rm -f $ETC/gres.conf; changed_ctl=1; }
fi

install_file $ETC/slurmdbd.conf 0600 root <<EOF && changed_dbd=1
# generated by ci/slurm-up.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF

# ---------------------------------------------------------------- munge
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
if ! running /run/munge/munged.pid munged; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
    wait_for munged sh -c 'munge -n | unmunge'
fi

# ---------------------------------------------------------------- mariadb
mariadb_up() { mariadb-admin --protocol=socket ping >/dev/null 2>&1; }
if ! mariadb_up; then
    log "starting mariadbd"
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >$LOG/mariadb-install.log 2>&1 ||
        die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
    setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --pid-file=/run/mysqld/mysqld.pid \
        --socket=/run/mysqld/mysqld.sock --skip-networking --innodb-use-native-aio=0 \
        --log-error=$LOG/mariadb.log </dev/null >/dev/null 2>&1 &
    wait_for mariadbd mariadb_up
fi
mariadb --protocol=socket -e "
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    FLUSH PRIVILEGES;" || die "could not create the MariaDB user of slurmdbd"

# ---------------------------------------------------------------- slurmdbd
if [ $changed_dbd = 1 ] && running /run/slurmdbd.pid slurmdbd; then log "slurmdbd.conf changed: restarting slurmdbd"; stop_pidfile /run/slurmdbd.pid slurmdbd; fi
if ! running /run/slurmdbd.pid slurmdbd; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd || die "slurmdbd did not start"
fi
wait_for "slurmdbd (sacctmgr show cluster)" sacctmgr -n show cluster

# cluster, accounts, root's associations (before slurmctld registers, so its first registration finds them)
if [ -z "$(sacctmgr -n -P show cluster "$CLUSTER" format=cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
fi
default_account=""
for a in $ACCOUNTS; do
    default_account=${default_account:-$a}
    [ -n "$(sacctmgr -n -P show account "$a" format=account)" ] ||
        sacctmgr -i add account "$a" Cluster="$CLUSTER" Description="CI $a" Organization=ci >/dev/null ||
        die "sacctmgr add account $a failed"
    [ -n "$(sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$a" user=root format=user)" ] ||
        sacctmgr -i add user root Account="$a" Cluster="$CLUSTER" >/dev/null || die "sacctmgr add user root -> $a failed"
done
[ -n "$default_account" ] && sacctmgr -i modify user root set DefaultAccount="$default_account" >/dev/null 2>&1 || true

# ---------------------------------------------------------------- slurmctld + slurmd
if [ $changed_ctl = 1 ]; then
    if running /run/slurmctld.pid slurmctld || running /run/slurmd.pid slurmd; then
        log "slurm.conf/gres.conf changed: restarting slurmctld and slurmd"
    fi
    stop_pidfile /run/slurmd.pid slurmd
    stop_pidfile /run/slurmctld.pid slurmctld
fi
if ! running /run/slurmctld.pid slurmctld; then
    log "starting slurmctld"
    /usr/sbin/slurmctld || die "slurmctld did not start"
fi
wait_for "slurmctld (scontrol ping)" sh -c 'scontrol ping | grep -q UP'
if ! running /run/slurmd.pid slurmd; then
    log "starting slurmd"
    /usr/sbin/slurmd || die "slurmd did not start"
fi

node_ok() { sinfo -h -n "$NODE" -o %t | grep -qE '^(idle|mix|alloc)$'; }
if ! node_ok; then
    # a node left DOWN/DRAINED by an earlier run (e.g. killed slurmd) is put back into service
    state=$(sinfo -h -n "$NODE" -o %t | head -1)
    case "$state" in down*|drain*|drng*|fail*|inval*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;; esac
fi
wait_for "node $NODE to become idle" node_ok

log "cluster '$CLUSTER' up (node $NODE: CPUs=$CPUS RealMemory=$MEM gpu=$GPUS; accounts: $ACCOUNTS)"
sinfo
