#!/usr/bin/env bash
# SLURM anchor for hvctl's scheduler benchmarks (issue 5): the submit
# throughput of a real single-host SLURM (slurm-wlm from Debian) on this
# machine, to compare with hvctl's own figures measured in the same run.
#
# As root. Installs slurm-wlm and munge if missing, then runs a private
# munged + slurmctld + slurmd whose key, sockets, state, spool, pid and log
# files all live in one scratch directory (nothing under /etc, /run or /var
# is used), on their own ports, so an existing munge/SLURM on the host is not
# touched. Measures:
#   1. N sequential `sbatch --wrap true` CLI calls (as a user would type them)
#      and the time until the queue is empty again;
#   2. one `sbatch --array=1-M --wrap true` and the time until it has drained.
# Everything it started is stopped and the scratch dir removed on exit,
# success or failure. Only the installed packages stay.
#
# Usage: sudo bench/slurm/anchor.sh
# Env:   N=500 (sequential jobs), ARRAY=1000 (array size, <= 1000 with the
#        default MaxArraySize), SCHED_PARAMS=batch_sched_delay=0 (empty for
#        stock Slurm), OVERSUBSCRIBE=k (k jobs per CPU; unset: 2 job slots),
#        CTLD_PORT=16817, SLURMD_PORT=16818, TIMEOUT=900 (s to wait for a
#        queue to drain), KEEP=1 (keep the scratch dir for its logs).
set -euo pipefail

N=${N:-500}
ARRAY=${ARRAY:-1000}
CTLD_PORT=${CTLD_PORT:-16817}
SLURMD_PORT=${SLURMD_PORT:-16818}
TIMEOUT=${TIMEOUT:-900}
# Slurm batches scheduling of newly submitted/finished batch jobs into windows
# of batch_sched_delay (default 3 s); 0 leaves the 1 s background cadence.
# SCHED_PARAMS= (empty) gives stock Slurm.
SCHED_PARAMS=${SCHED_PARAMS-batch_sched_delay=0}
# OVERSUBSCRIBE=k lets k jobs share each of the 2 CPUs (OverSubscribe=FORCE:k),
# so that completion is bound by Slurm's dispatch rather than by 2 job slots.
OVERSUBSCRIBE=${OVERSUBSCRIBE:-}
case "$OVERSUBSCRIBE" in ''|[1-9]|[1-9][0-9]|[1-9][0-9][0-9]) ;; *) echo "anchor: ERROR: OVERSUBSCRIBE must be an integer 1..999" >&2; exit 1;; esac

say() { echo "anchor: $*" >&2; }
die() { echo "anchor: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (run: sudo $0)"

# ---- 1. packages -----------------------------------------------------------
need=()
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
for b in munged mungekey slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not found after installing slurm-wlm and munge"
done
export PATH="/usr/sbin:/sbin:$PATH"
getent passwd munge >/dev/null || die "user munge missing (the munge package should have created it)"

for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  if ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; then
    die "TCP port $port is already in use; set CTLD_PORT/SLURMD_PORT to free ports"
  fi
done

# ---- scratch dir and cleanup -------------------------------------------------

stop_pid() { # name pid
  local name=$1 pid=$2 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "$name (pid $pid) ignored SIGTERM for 5 s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}
pidof_file() { [ -s "$1" ] && cat "$1" || true; }
cleanup() {
  local rc=$? p
  set +e
  if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
    scancel --quiet --user=root >/dev/null 2>&1
  fi
  # the pid files cover a daemon that forked but was never confirmed up
  stop_pid slurmd "${SLURMD_PID:-$(pidof_file "$S/slurmd.pid")}"
  stop_pid slurmctld "${CTLD_PID:-$(pidof_file "$S/slurmctld.pid")}"
  for p in $(pgrep -x slurmstepd); do
    case "$pre_stepd" in *" $p "*) ;; *) kill -KILL "$p" 2>/dev/null;; esac
  done
  stop_pid munged "${MUNGE_PID:-$(pidof_file "$S/munge/munged.pid")}"
  if [ -n "${KEEP:-}" ]; then say "kept scratch dir $S"; else rm -rf "$S"; fi
  exit $rc
}
MUNGE_PID="" CTLD_PID="" SLURMD_PID=""
# slurmstepd daemonises away from slurmd; remember the ones that existed before
# so that cleanup only ever kills the ones this run created.
pre_stepd=" $(pgrep -x slurmstepd | tr '\n' ' ' || true) "
S=$(mktemp -d /tmp/slurm-anchor.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 0755 "$S"

logtail() { # name file
  echo "---- last lines of $2 ----" >&2
  { tail -n 25 "$2" 2>/dev/null || echo "(no log written)"; } >&2
  echo "----" >&2
}

# ---- munge: own key, socket, pid, seed and log in $S/munge --------------------
M=$S/munge
mkdir -p "$M"
chown munge: "$M"
chmod 0700 "$M"
if ! [ -s "$M/munge.key" ]; then
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$M/munge.key" >/dev/null 2>&1 || true
  fi
  if ! [ -s "$M/munge.key" ] && command -v create-munge-key >/dev/null; then
    create-munge-key -f >/dev/null 2>&1 && cp /etc/munge/munge.key "$M/munge.key" || true
  fi
  [ -s "$M/munge.key" ] || dd if=/dev/urandom of="$M/munge.key" bs=1024 count=1 status=none
fi
chown munge: "$M/munge.key"
chmod 0400 "$M/munge.key"
# The socket dir must be reachable by clients (slurmctld/slurmd/slurmstepd and
# the submitting user; all root here, but keep it usable by anyone).
chmod 0755 "$M"
SOCK=$M/munge.socket
runuser -u munge -- munged --socket="$SOCK" --key-file="$M/munge.key" \
  --pid-file="$M/munged.pid" --seed-file="$M/munged.seed" \
  --log-file="$M/munged.log" --num-threads=4 \
  || { logtail munged "$M/munged.log"; die "munged failed to start"; }
for i in $(seq 1 50); do [ -S "$SOCK" ] && [ -s "$M/munged.pid" ] && break; sleep 0.1; done
MUNGE_PID=$(pidof_file "$M/munged.pid")
[ -S "$SOCK" ] && [ -n "$MUNGE_PID" ] || { logtail munged "$M/munged.log"; die "munged did not create its socket $SOCK"; }
echo anchor | munge --socket="$SOCK" | unmunge --socket="$SOCK" >/dev/null 2>&1 \
  || { logtail munged "$M/munged.log"; die "munge/unmunge round trip through $SOCK failed"; }

# ---- slurm.conf --------------------------------------------------------------
H=$(hostname -s)
mkdir -p "$S/state" "$S/spool/$H" "$S/log"
chmod 0700 "$S/state"
cat > "$S/slurm.conf" <<EOF
# Generated by hvctl bench/slurm/anchor.sh: single host, no cgroups, no accounting.
ClusterName=anchor
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
${SCHED_PARAMS:+SchedulerParameters=$SCHED_PARAMS}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$H NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=bench Nodes=$H Default=YES MaxTime=INFINITE State=UP${OVERSUBSCRIBE:+ OverSubscribe=FORCE:$OVERSUBSCRIBE}
EOF
export SLURM_CONF=$S/slurm.conf
# Never let the user's environment redirect the client commands elsewhere.
unset SLURM_CLUSTERS SQUEUE_FORMAT SINFO_FORMAT SBATCH_PARTITION 2>/dev/null || true

# ---- daemons -----------------------------------------------------------------
start_daemon() { # name pidfile logfile cmd...
  local name=$1 pidf=$2 logf=$3 pid="" i; shift 3
  local rc=0
  "$@" >"$S/log/$name.stderr" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    sleep 1 # the daemonised child may still be writing its last log lines
    cat "$S/log/$name.stderr" >&2; logtail "$name" "$logf"; die "$name failed to start (exit status $rc)"
  fi
  for i in $(seq 1 100); do
    pid=$(pidof_file "$pidf")
    [ -n "$pid" ] && break
    sleep 0.1
  done
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    cat "$S/log/$name.stderr" >&2; logtail "$name" "$logf"; die "$name did not stay up (no live pid in $pidf)"
  fi
  echo "$pid"
}
CTLD_PID=$(start_daemon slurmctld "$S/slurmctld.pid" "$S/log/slurmctld.log" slurmctld -f "$SLURM_CONF")
SLURMD_PID=$(start_daemon slurmd "$S/slurmd.pid" "$S/log/slurmd.log" slurmd -f "$SLURM_CONF")

say "waiting for node $H to be idle"
state=""
for i in $(seq 1 150); do
  state=$(sinfo -h -n "$H" -o '%T' 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  kill -0 "$CTLD_PID" 2>/dev/null || { logtail slurmctld "$S/log/slurmctld.log"; die "slurmctld exited"; }
  kill -0 "$SLURMD_PID" 2>/dev/null || { logtail slurmd "$S/log/slurmd.log"; die "slurmd exited"; }
  sleep 0.2
done
if [ "$state" != idle ]; then
  sinfo -N -l >&2 || true
  logtail slurmctld "$S/log/slurmctld.log"; logtail slurmd "$S/log/slurmd.log"
  die "node $H not idle after 30 s (state: '${state:-none}')"
fi

# ---- measurements ------------------------------------------------------------
now() { date +%s.%N; }
qlen() { # jobs still in the queue; a failing squeue never counts as empty
  local out
  out=$(squeue -h -o '%i' 2>/dev/null) || { echo 999999; return; }
  [ -z "$out" ] && echo 0 || echo "$out" | wc -l
}
drain() { # waits until squeue is empty; fails after $TIMEOUT s
  local t0 n
  t0=$(now)
  while :; do
    n=$(qlen)
    [ "$n" -eq 0 ] && return 0
    if [ "$(echo "$(now) - $t0 > $TIMEOUT" | bc)" = 1 ]; then
      squeue -t all -o '%i %T %r' | head -20 >&2
      logtail slurmctld "$S/log/slurmctld.log"
      die "queue not empty after ${TIMEOUT} s ($n jobs left)"
    fi
    sleep 0.25
  done
}
rate() { echo "scale=3; $1 / $2" | bc | awk '{printf "%.0f", $1}'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# warm-up: one job end to end, so that the first measured submit does not pay
# for slurmctld's lazy initialisation
sbatch -Q --wrap true -o /dev/null >/dev/null || { logtail slurmctld "$S/log/slurmctld.log"; die "sbatch failed"; }
drain

say "submitting $N jobs with sequential sbatch calls"
t0=$(now)
for i in $(seq 1 "$N"); do
  sbatch -Q --wrap true -o /dev/null >/dev/null \
    || { logtail slurmctld "$S/log/slurmctld.log"; die "sbatch #$i failed"; }
done
t1=$(now)
drain
t2=$(now)
seq_sub=$(secs "$t0" "$t1"); seq_all=$(secs "$t0" "$t2")

say "submitting one array of $ARRAY tasks"
t0=$(now)
sbatch -Q --array=1-"$ARRAY" --wrap true -o /dev/null >/dev/null \
  || { logtail slurmctld "$S/log/slurmctld.log"; die "sbatch --array failed"; }
t1=$(now)
drain
t2=$(now)
arr_sub=$(secs "$t0" "$t1"); arr_all=$(secs "$t0" "$t2")

echo "slurm $(sbatch -V | awk '{print $2}') on $H ($(nproc) cores), single node CPUs=2, sched/backfill, select/cons_tres, SchedulerParameters=${SCHED_PARAMS:-(stock)}, OverSubscribe=$([ -n "$OVERSUBSCRIBE" ] && echo "FORCE:$OVERSUBSCRIBE" || echo NO)"
echo "slurm sbatch (sequential CLI): $N jobs in $seq_sub s = $(rate "$N" "$seq_sub") jobs/s"
echo "slurm sbatch (sequential CLI): all $N completed (squeue empty) $seq_all s after the first submit = $(rate "$N" "$seq_all") jobs/s end to end"
echo "slurm sbatch --array=1-$ARRAY: submitted in $arr_sub s = $(rate "$ARRAY" "$arr_sub") jobs/s"
echo "slurm sbatch --array=1-$ARRAY: all $ARRAY completed (squeue empty) $arr_all s after submit = $(rate "$ARRAY" "$arr_all") jobs/s end to end"
