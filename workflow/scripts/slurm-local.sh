#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try workflow/profiles/slurm.
#
#   workflow/scripts/slurm-local.sh up   [--prefix DIR]   install (Debian), configure, start, wait for the node
#   workflow/scripts/slurm-local.sh down [--prefix DIR]   stop the daemons, remove what `up` created
#   workflow/scripts/slurm-local.sh status [--prefix DIR]
#
# Runs as root on Debian or Ubuntu, without systemd: munged, slurmctld and
# slurmd are started as plain background daemons. The node is this machine
# with all its CPUs and memory, in two partitions, `cpu` (the default) and
# `gpu`, the names the profile uses (the node has no GPU: train with
# train.device: cpu). No accounting database: `sacct` has nothing to report,
# so the profile queries job states with `squeue` (slurm-status-command), and
# finished jobs stay visible to squeue for MinJobAge (600 s). Processes are
# tracked without cgroups (proctrack/linuxproc, task/none), so it works
# without cgroup v2 delegation.
#
# Everything it writes is under the state folder (default
# /tmp/gaitflow-slurm, or --prefix, or $GAITFLOW_SLURM_PREFIX): the config,
# the munge key and socket, the spool, pid and log files. The one exception:
# SLURM's commands read /etc/slurm/slurm.conf, so `up` links that path to the
# state folder's slurm.conf when nothing is there, and `down` removes the link.
# Both subcommands are idempotent.
set -u -o pipefail

PROG=slurm-local.sh
MARKER=.gaitflow-slurm-local
SYSTEM_CONF=/etc/slurm/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
MIN_JOB_AGE=600

die() {
    echo "$PROG: $*" >&2
    exit 1
}
say() { echo "$PROG: $*"; }

usage() {
    echo "usage: $PROG up|down|status [--prefix DIR]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
case $1 in -h | --help)
    echo "usage: $PROG up|down|status [--prefix DIR]  (a one-node SLURM cluster on this machine; see the top of this file)"
    exit 0
    ;;
esac
CMD=$1
shift
PREFIX=${GAITFLOW_SLURM_PREFIX:-/tmp/gaitflow-slurm}
while [ $# -gt 0 ]; do
    case $1 in
    --prefix)
        [ $# -ge 2 ] && [ -n "$2" ] || die "--prefix needs a folder"
        PREFIX=$2
        shift 2
        ;;
    --prefix=*)
        PREFIX=${1#--prefix=}
        [ -n "$PREFIX" ] || die "--prefix needs a folder"
        shift
        ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1' (usage: $PROG up|down|status [--prefix DIR])" ;;
    esac
done
case $CMD in up | down | status) ;; *) die "unknown subcommand '$CMD' (usage: $PROG up|down|status [--prefix DIR])" ;; esac
case $PREFIX in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] && [ "$PREFIX" != / ] || die "--prefix cannot be /"

CONF=$PREFIX/etc/slurm.conf
MUNGE_SOCKET=$PREFIX/munge/munge.socket
export SLURM_CONF=$CONF

# pid of a daemon from its pid file, when that process is alive and is the daemon
pid_of() {
    local name=$1 file=$PREFIX/run/$1.pid pid
    [ -s "$file" ] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    case $(cat "/proc/$pid/comm" 2>/dev/null) in "$name"*) echo "$pid" ;; *) return 1 ;; esac
}

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1; }

stop_daemon() {
    local name=$1 pid
    pid=$(pid_of "$name") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PREFIX/run/$name.pid"
    say "stopped $name ($pid)"
}

ours_link() { [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; }

# wait up to 10 s for a daemon's pid file (daemons write it after forking)
wait_pid() {
    for _ in $(seq 1 100); do
        pid_of "$1" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# cancel every job of this cluster and wait for them to end (KillWait is 30 s)
cancel_jobs() {
    pid_of slurmctld >/dev/null || return 0
    local jobs
    jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING -o %i 2>/dev/null | xargs)
    [ -n "${jobs// /}" ] || return 0
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086 # one job id per word
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 90); do
        [ -z "$(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null)" ] && return 0
        sleep 0.5
    done
}

cmd_status() {
    local name running=0
    for name in munged slurmctld slurmd; do
        if pid=$(pid_of "$name"); then
            say "$name running ($pid)"
            running=1
        else
            say "$name not running"
        fi
    done
    if [ $running = 1 ] && [ -f "$PREFIX/node" ]; then
        NODE=$(cat "$PREFIX/node")
        sinfo -N -o "%N %P %t %c %m" 2>/dev/null || true
    fi
    [ $running = 1 ]
}

cmd_down() {
    if [ ! -e "$PREFIX" ]; then
        ours_link && rm -f "$SYSTEM_CONF"
        say "nothing to stop: $PREFIX does not exist"
        return 0
    fi
    [ -f "$PREFIX/$MARKER" ] || die "$PREFIX was not created by $PROG up; not touching it"
    [ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root)"
    cancel_jobs
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    # job steps that outlived slurmd (slurmstepd is not a child of it)
    local pid
    for pid in $(pgrep -x slurmstepd 2>/dev/null); do
        if tr '\0' ' ' <"/proc/$pid/environ" 2>/dev/null | grep -q "SLURM_CONF=$CONF "; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if ours_link; then
        rm -f "$SYSTEM_CONF"
        say "removed $SYSTEM_CONF (a link to $CONF)"
    fi
    rm -rf "$PREFIX"
    say "down; removed $PREFIX"
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null && command -v squeue >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    [ ${#missing[@]} = 0 ] && return 0
    command -v apt-get >/dev/null || die "needs ${missing[*]} and has no apt-get to install them (Debian or Ubuntu)"
    say "installing ${missing[*]} with apt-get (log: $PREFIX/log/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$PREFIX/log/apt.log" 2>&1; then
        apt-get update -q >>"$PREFIX/log/apt.log" 2>&1 || die "apt-get update failed; see $PREFIX/log/apt.log"
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$PREFIX/log/apt.log" 2>&1 ||
            die "apt-get install ${PACKAGES[*]} failed; see $PREFIX/log/apt.log"
    fi
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
        command -v munged >/dev/null || die "the packages are installed but slurmctld, slurmd, sbatch or munged is still missing"
}

write_conf() {
    local hw cpus mem
    hw=$(slurmd -C 2>/dev/null | head -n 1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [ -n "$cpus" ] || cpus=$(nproc)
    [ -n "$mem" ] || mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    [ -n "$cpus" ] && [ -n "$mem" ] && [ "$mem" -gt 0 ] || die "could not read this machine's CPUs and memory"
    # the node's hardware line as slurmd sees it (CPUs, sockets, cores, threads, memory)
    local hardware
    hardware=$(sed -e 's/^NodeName=[^ ]* //' <<<"$hw")
    [ -n "$hardware" ] && [ "$hardware" != "$hw" ] || hardware="CPUs=$cpus RealMemory=$mem"
    cat >"$CONF" <<EOF
# Written by $PROG up: a one-node cluster on this machine, no systemd, no accounting.
ClusterName=gaitflow-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$PREFIX/spool/slurmctld
SlurmdSpoolDir=$PREFIX/spool/slurmd
SlurmctldPidFile=$PREFIX/run/slurmctld.pid
SlurmdPidFile=$PREFIX/run/slurmd.pid
SlurmctldLogFile=$PREFIX/log/slurmctld.log
SlurmdLogFile=$PREFIX/log/slurmd.log
PlugStackConfig=$PREFIX/etc/plugstack.conf
# no cgroups: processes tracked by parent pid, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting database (sacct has nothing to say; use squeue)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# finished jobs stay in squeue this long (the profile's status queries need it)
MinJobAge=$MIN_JOB_AGE
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
ReturnToService=2
JobRequeue=1
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    # read by slurmd when a plugin asks for it; nothing here uses cgroups
    cat >"$PREFIX/etc/cgroup.conf" <<EOF
# Written by $PROG up: no resource constraints (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none).
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
    : >"$PREFIX/etc/plugstack.conf"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_up() {
    [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts the SLURM daemons as root)"
    if [ -e "$PREFIX" ] && [ ! -f "$PREFIX/$MARKER" ]; then
        die "$PREFIX exists and was not created by $PROG; pick another --prefix"
    fi
    if [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ] && ! ours_link; then
        local other
        other=$(readlink "$SYSTEM_CONF" 2>/dev/null)
        other=${other%/etc/slurm.conf}
        if [ -n "$other" ] && [ -f "$other/$MARKER" ]; then
            die "another local cluster is configured (state in $other); run '$PROG down --prefix $other' first"
        fi
        die "$SYSTEM_CONF exists: this machine already has a SLURM configuration; not replacing it"
    fi
    mkdir -p "$PREFIX"/{etc,munge,run,log,spool/slurmctld,spool/slurmd} || die "cannot create $PREFIX"
    touch "$PREFIX/$MARKER"
    install_packages


    NODE=$(hostname -s 2>/dev/null || hostname)
    [ -n "$NODE" ] || die "cannot read this machine's host name"
    if [ -f "$PREFIX/node" ] && [ "$(cat "$PREFIX/node")" != "$NODE" ]; then
        die "$PREFIX was set up for host $(cat "$PREFIX/node"); run '$PROG down' first"
    fi

    if pid_of munged >/dev/null && pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null; then
        local now
        now=$(node_state)
        case $now in idle | mix | alloc)
            say "already up: node $NODE is $now, partitions cpu (default) and gpu; state in $PREFIX"
            return 0
            ;;
        esac
    fi

    CTLD_PORT=6817
    SLURMD_PORT=6818
    if ! pid_of slurmctld >/dev/null && ! port_free $CTLD_PORT; then
        die "port $CTLD_PORT is taken: another slurmctld is running on this machine"
    fi
    if ! pid_of slurmd >/dev/null && ! port_free $SLURMD_PORT; then
        die "port $SLURMD_PORT is taken: another slurmd is running on this machine"
    fi
    echo "$NODE" >"$PREFIX/node"
    write_conf
    ours_link || ln -s "$CONF" "$SYSTEM_CONF" || die "cannot link $SYSTEM_CONF to $CONF"

    # munge: a key of our own, a socket in the state folder
    if [ ! -s "$PREFIX/munge/munge.key" ]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$PREFIX/munge/munge.key" >/dev/null 2>&1 ||
                die "mungekey could not create $PREFIX/munge/munge.key"
        else
            dd if=/dev/urandom of="$PREFIX/munge/munge.key" bs=1024 count=1 status=none ||
                die "cannot create $PREFIX/munge/munge.key"
        fi
        say "created the munge key $PREFIX/munge/munge.key"
    fi
    chmod 0400 "$PREFIX/munge/munge.key"
    chmod 0755 "$PREFIX/munge" # other users of this machine may submit jobs
    if ! pid_of munged >/dev/null; then
        munged --force --key-file="$PREFIX/munge/munge.key" --socket="$MUNGE_SOCKET" \
            --pid-file="$PREFIX/run/munged.pid" --log-file="$PREFIX/log/munged.log" \
            --seed-file="$PREFIX/munge/munged.seed" >>"$PREFIX/log/munged.log" 2>&1 ||
            die "munged did not start; see $PREFIX/log/munged.log"
        wait_pid munged || die "munged did not start; see $PREFIX/log/munged.log"
        say "started munged ($(pid_of munged))"
    fi
    if ! pid_of slurmctld >/dev/null; then
        slurmctld -f "$CONF" >>"$PREFIX/log/slurmctld.log" 2>&1 ||
            die "slurmctld did not start; see $PREFIX/log/slurmctld.log"
        for _ in $(seq 1 50); do
            scontrol ping >/dev/null 2>&1 && break
            sleep 0.2
        done
        wait_pid slurmctld || die "slurmctld did not start; see $PREFIX/log/slurmctld.log"
        say "started slurmctld ($(pid_of slurmctld))"
    fi
    if ! pid_of slurmd >/dev/null; then
        slurmd -f "$CONF" >>"$PREFIX/log/slurmd.log" 2>&1 || die "slurmd did not start; see $PREFIX/log/slurmd.log"
        wait_pid slurmd || die "slurmd did not start; see $PREFIX/log/slurmd.log"
        say "started slurmd ($(pid_of slurmd))"
    fi

    local state=""
    for _ in $(seq 1 120); do
        state=$(node_state)
        case $state in
        idle | mix | alloc) break ;;
        down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    case $state in
    idle | mix | alloc) ;;
    *) die "node $NODE is '${state:-unknown}' after 60 s, not idle; see $PREFIX/log/slurmd.log and slurmctld.log" ;;
    esac
    say "up: node $NODE is $state, $(sinfo -h -N -n "$NODE" -o '%c CPUs, %m MB' | head -n 1), in partitions cpu (default) and gpu"
    local how="$0 down"
    [ "$PREFIX" = /tmp/gaitflow-slurm ] || how="$how --prefix $PREFIX"
    say "state in $PREFIX; stop with: $how"
}

case $CMD in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
esac
