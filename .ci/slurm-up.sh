#!/usr/bin/env bash
# Bring up a real one-node Slurm on this machine for the SLURM-path tests, or leave the one that
# is already answering alone. Idempotent: `.ci/run` calls it, and so does the tests' `slurm`
# fixture (tests/support/slurm.py) when run as root.
#
# Debian's slurm-wlm + munge (installed when missing), no accounting database (the common
# small-cluster case: `sacct` is installed but knows nothing), one partition `debug` (Default),
# and GPUs as a generic resource (`Gres=gpu:4` on stand-in device files): this node has no GPU,
# but Slurm still schedules, records and refuses GPU requests the way a GPU cluster does.
# A cluster this script did not configure (a slurm.conf without its marker) is never touched.
#
# Exit 0 when `sinfo` shows the node ready; 1 with the reason otherwise. Logs: /var/log/slurm/.
set -euo pipefail

MARK="# lmforge one-node test cluster (.ci/slurm-up.sh)"
CONF=/etc/slurm/slurm.conf
GPUS=${LMFORGE_SLURM_GPUS:-4}

ready() {  # the controller answers and the node takes jobs
  scontrol ping 2>/dev/null | grep -q UP &&
    sinfo -h -N -o "%T" 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'
}

if command -v scontrol >/dev/null && ready; then echo "slurm-up: Slurm is up"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "slurm-up: Slurm is not running and starting it needs root" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm-up: installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if [ -f "$CONF" ] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
  echo "slurm-up: $CONF was not written by this script; start that cluster its own way" >&2
  exit 1
fi

node=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
# Slurm counts a GPU only with a device file: character devices named like GPUs (each the same
# device as /dev/null), so that jobs asking for --gres=gpu:N are scheduled and recorded.
gres="" gpu_files=""
for i in $(seq 0 $((GPUS - 1))); do
  f=/run/slurm/fake-gpu$i
  [ -c "$f" ] || mknod "$f" c 1 3 2>/dev/null || { echo "slurm-up: cannot mknod $f: no GPUs in Gres" >&2; GPUS=0; break; }
  gpu_files="$gpu_files,$f"
done
if [ "$GPUS" -gt 0 ]; then gres="Gres=gpu:$GPUS"; fi
printf '%s\nAutoDetect=off\n' "$MARK" > /etc/slurm/gres.conf
[ "$GPUS" = 0 ] || printf 'NodeName=%s Name=gpu File=%s\n' "$node" "${gpu_files#,}" >> /etc/slurm/gres.conf
cat > "$CONF.new" <<EOF
$MARK
ClusterName=lmforge
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
MessageTimeout=10
SlurmdTimeout=60
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $gres State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.new" "$CONF"

# munge: a key, its run folder owned by munge, the daemon as munge
[ -s /etc/munge/munge.key ] || mungekey -c -f
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged --force
fi

# not ready, so a slurmctld/slurmd of ours that runs has an older config: start them afresh
for d in slurmd slurmctld; do
  pid=$(cat /run/slurm/$d.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
done
slurmctld
slurmd
for _ in $(seq 60); do
  if ready; then echo "slurm-up: Slurm is up ($(sinfo -h -o '%P %D %C %G'))"; exit 0; fi
  # a node that came back from an earlier run may sit in DOWN: give it back
  scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm-up: Slurm did not come up in 60 s; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
