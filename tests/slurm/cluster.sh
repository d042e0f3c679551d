#!/usr/bin/env bash
# A one-node SLURM cluster for the tests (Debian's munge + slurmctld + slurmd, no systemd), all state under
# $NEXUS_SLURM_DIR (default /tmp/nexus-slurm).   tests/slurm/cluster.sh start | stop | status
# start installs the packages when missing and is idempotent; stop kills the daemons it started and removes
# the folder. Tests find the cluster through $NEXUS_SLURM_DIR/slurm.conf (export SLURM_CONF to use it by hand).
set -euo pipefail
DIR=${NEXUS_SLURM_DIR:-/tmp/nexus-slurm}
export SLURM_CONF=$DIR/slurm.conf
DAEMONS=(slurmd slurmctld munged)

alive() {   # a pid file's process exists and is not a zombie (a killed daemon's zombie keeps its pid)
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  [[ -r /proc/$pid/stat ]] && [[ $(awk '{print $3}' "/proc/$pid/stat") != Z ]]
}

install() {
  command -v slurmctld >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null && return
  echo "installing munge + SLURM (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q munge slurmctld slurmd slurm-client >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q munge slurmctld slurmd slurm-client >/dev/null; }
}

write_conf() {
  local node
  # the node line from slurmd -C (else "reconfigured socket/core boundaries"), memory lowered for headroom
  node=$(slurmd -C | head -1 | sed -E 's/NodeName=[^ ]+/NodeName=localhost/; s/RealMemory=[0-9]+/RealMemory=2000/')
  cat > "$SLURM_CONF" <<CONF
ClusterName=nexus-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2
ReturnToService=2
KillWait=5
MinJobAge=600
JobRequeue=1
$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  install
  if alive slurmctld && alive slurmd && alive munged && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
    echo "SLURM up ($SLURM_CONF)"; return
  fi
  stop >/dev/null 2>&1 || true
  mkdir -p "$DIR"/{state,spool,munge}
  chmod 755 "$DIR" "$DIR/munge"            # munged refuses a socket folder others can write to
  mungekey -c -k "$DIR/munge.key" -f 2>/dev/null || mungekey -c -k "$DIR/munge.key"
  chmod 600 "$DIR/munge.key"
  setsid munged --key-file="$DIR/munge.key" --socket="$DIR/munge/munge.socket" --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/munged.log" --seed-file="$DIR/munge.seed" -f </dev/null >/dev/null 2>&1
  write_conf
  setsid slurmctld -i -f "$SLURM_CONF" </dev/null >"$DIR/slurmctld.out" 2>&1 &
  setsid slurmd -f "$SLURM_CONF" </dev/null >"$DIR/slurmd.out" 2>&1 &
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then echo "SLURM up ($SLURM_CONF)"; return; fi
    sleep 1
  done
  echo "SLURM did not come up; logs in $DIR:" >&2
  tail -n 20 "$DIR"/slurmctld.log "$DIR"/slurmd.log "$DIR"/*.out >&2 || true
  exit 1
}

stop() {
  local pid
  for d in "${DAEMONS[@]}"; do
    pid=$(cat "$DIR/$d.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null || true
  done
  for _ in $(seq 20); do
    alive slurmd || alive slurmctld || alive munged || break
    sleep 0.5
  done
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then kill -9 "$(cat "$DIR/$d.pid")" 2>/dev/null || true; fi
  done
  rm -rf "$DIR"
  echo "SLURM stopped"
}

status() {
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then echo "$d: running"; else echo "$d: stopped"; fi
  done
  sinfo 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
