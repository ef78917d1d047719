#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for testing workflow/profiles/slurm (CI and by hand).
#   .ci/slurm.sh start   install slurm-wlm + munge if missing (Debian/Ubuntu, needs root), write /etc/slurm/slurm.conf,
#                        start munged, slurmctld and slurmd (no systemd) and wait until the node is idle
#   .ci/slurm.sh stop    stop the three daemons (by their pid files)
# One node = this host with its real CPUs and memory, one partition "ci", no accounting (job states come from
# squeue: MinJobAge keeps finished jobs visible), no cgroups (proctrack/linuxproc, task/none), no GPUs: the
# demo/smoke configs request none (training.resources.gpu: 0).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by .ci/slurm.sh"
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm
MUNGE_RUN=/run/munge

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    echo "slurm.sh: installing slurm-wlm and munge"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        echo "slurm.sh: $CONF exists and was not written by this script; not touching it" >&2
        exit 1
    fi
    local host node
    host=$(hostname -s)
    # slurmd -C prints this host's real layout: NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
    node=$(slurmd -C | head -n 1)
    as_root install -d -m 0755 /etc/slurm "$STATE" "$SPOOL" "$LOGS" "$RUN"
    as_root tee "$CONF" >/dev/null <<EOF
$MARK
ClusterName=ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for 5 minutes (the SLURM executor plugin needs >= 3 status-check intervals).
MinJobAge=300
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
$node State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if as_root test -S "$MUNGE_RUN/munge.socket.2" && munge -n </dev/null >/dev/null 2>&1; then
        return
    fi
    if ! as_root test -s /etc/munge/munge.key; then
        as_root sh -c 'dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null'
        as_root chown munge:munge /etc/munge/munge.key
        as_root chmod 0400 /etc/munge/munge.key
    fi
    as_root install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
    as_root runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n </dev/null >/dev/null 2>&1 && return
        sleep 0.5
    done
    echo "slurm.sh: munged did not start" >&2
    exit 1
}

alive() {  # alive <pidfile>
    as_root test -f "$1" && as_root kill -0 "$(as_root cat "$1")" 2>/dev/null
}

start() {
    install_packages
    write_config
    start_munge
    alive "$RUN/slurmctld.pid" || as_root /usr/sbin/slurmctld
    alive "$RUN/slurmd.pid" || as_root /usr/sbin/slurmd
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
        case "$state" in
            idle | mix | alloc) sinfo; return ;;
            down* | drain* | drng*) as_root scontrol update NodeName="$(hostname -s)" State=RESUME || true ;;
        esac
        sleep 1
    done
    echo "slurm.sh: node not idle after 60 s (state: '${state}'); logs in $LOGS" >&2
    as_root tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
    exit 1
}

stop_daemon() {  # stop_daemon <pidfile>
    local pid
    if alive "$1"; then
        pid=$(as_root cat "$1")
        as_root kill "$pid"
        for _ in $(seq 20); do
            as_root kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.5
        done
        as_root kill -9 "$pid" 2>/dev/null || true
    fi
}

stop() {
    stop_daemon "$RUN/slurmd.pid"
    stop_daemon "$RUN/slurmctld.pid"
    stop_daemon "$MUNGE_RUN/munged.pid"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
