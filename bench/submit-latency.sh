#!/usr/bin/env bash
# Submit-to-start latency of the builtin scheduler on a local cluster:
# 20 jobs submitted one at a time, each printing the time it started;
# latency = start - submit (as the global manager recorded it). Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hv="$root/bin/hvctl"
[ "$(id -u)" = 0 ] || { echo "bench/submit-latency.sh needs root" >&2; exit 1; }
work=$(mktemp -d)
trap '"$hv" -chdir="$work" down main.hcl >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cat > "$work/main.hcl" <<'EOT'
provider "local" "lab" {}
cluster "lat" {
  overlay {
    cidr = "10.211.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.61.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" {
      count = 2
      instance { cpus = 2 }
    }
  }
}
EOT
cd "$work"
"$hv" up main.hcl > /dev/null
lat=()
for i in $(seq 1 20); do
  t0=$(date +%s.%N)
  id=$("$hv" submit -json main.hcl -- sh -c 'date +%s.%N' | grep -o '"id": "[^"]*"' | head -1 | cut -d'"' -f4)
  while :; do
    out=$("$hv" logs main.hcl "$id")
    [ -n "$out" ] && break
    sleep 0.05
  done
  lat+=("$(echo "$out - $t0" | bc)")
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {printf "submit-to-start latency over %d jobs (hvctl submit -> command starts): median %.3f s, min %.3f s, max %.3f s\n", NR, a[int((NR+1)/2)], a[1], a[NR]}'
