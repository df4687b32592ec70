#!/usr/bin/env bash
# Times `hvctl up` of a two-site, 20-node local cluster (boot_time 0s),
# until every node has joined and its probe through the overlay answered,
# then reports each agent's memory (RSS) and tears the cluster down.
# Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hv="$root/bin/hvctl"
[ "$(id -u)" = 0 ] || { echo "bench/local-up.sh needs root (network namespaces)" >&2; exit 1; }
work=$(mktemp -d)
trap '"$hv" -chdir="$work" down main.hcl >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
name="bench20-$RANDOM" # unique: other runs may share the machine
cat > "$work/main.hcl" <<EOT
provider "local" "lab" { boot_time = "0s" }
cluster "$name" {
  overlay {
    cidr = "10.210.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.60.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" { count = 9 }
  }
  site "cloud" {
    provider = provider.local.lab
    gateway  = "gw"
    network { cidr = "10.61.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "w" { count = 9 }
  }
}
EOT
cd "$work"
for run in 1 2 3; do
  t0=$(date +%s.%N)
  "$hv" up main.hcl > up.log || { cat up.log; exit 1; }
  t1=$(date +%s.%N)
  printf 'up of 20 nodes in 2 sites, run %d: %.2f s (%s)\n' "$run" "$(echo "$t1 - $t0" | bc)" "$(grep -o 'after [0-9.]*s' up.log | tail -1)"
  if [ "$run" = 1 ]; then
    total=0; n=0
    for pid in $(pgrep -f "hvctl agent -config $work"); do
      # only the agents, not wrappers whose command line names them (unshare)
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = hvctl ] || continue
      kb=$(awk '/VmRSS/{print $2}' /proc/$pid/status); total=$((total + kb)); n=$((n + 1))
    done
    printf 'agent memory: %d agents, %d KiB RSS in all, %d KiB per agent\n' "$n" "$total" "$((total / n))"
    hub=$(pgrep -f "hvctl agent -config $work/.hvctl/local/nodes/.*" | head -1)
  fi
  "$hv" down main.hcl > /dev/null
done
