#!/usr/bin/env bash
# Times `hvctl up` of a 30-node, 5-site hierarchical local cluster with
# nested NAT'd sites (issue 13) until every pair of nodes is reachable:
# `hvctl check -all-pairs` (ping and TCP between all 870 ordered pairs,
# through exec) is run right after up returns, and again until it
# reports every path answering. Then it reports each agent's memory (RSS)
# and tears the cluster down. Needs root. RUNS (default 2) runs back to
# back, torn down in between.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/topo-up.sh needs root (network namespaces)" >&2; exit 1; }
hv="$root/bin/hvctl"
[ -x "$hv" ] || (cd "$root" && go build -o bin/hvctl ./cmd/hvctl)
runs=${RUNS:-2}
work=$(mktemp -d)
name="bench30-$RANDOM"
trap '"$hv" -chdir="$work" down main.hcl >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cat > "$work/main.hcl" <<EOT
provider "local" "lab" { boot_time = "0s" }
cluster "$name" {
  overlay {
    cidr     = "10.211.0.0/16"
    topology = "hierarchical"
    hubs     = ["core.hub"]
  }
  site "core" {
    provider = provider.local.lab
    gateway  = "hub"
    network { cidr = "192.168.91.0/24" }
    node "hub" {
      roles     = ["hub", "manager", "gateway"]
      public_ip = true
    }
    pool "w" { count = 5 }
  }
  site "edge" {
    provider = provider.local.lab
    gateway  = "gw"
    network { cidr = "10.81.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "w" { count = 5 }
    site "far" {
      gateway = "gw"
      network { cidr = "10.82.0.0/24" }
      node "gw" { roles = ["gateway"] }
      pool "w" { count = 5 }
    }
  }
  site "cloud" {
    provider = provider.local.lab
    tier     = 1
    gateway  = "gw"
    network { cidr = "10.83.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "w" { count = 5 }
    site "zone" {
      gateway = "gw"
      network { cidr = "10.84.0.0/24" }
      node "gw" { roles = ["gateway"] }
      pool "w" { count = 5 }
    }
  }
}
EOT
cd "$work"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
for run in $(seq 1 "$runs"); do
  t0=$(now)
  "$hv" up main.hcl > up.log 2>&1 || { cat up.log; exit 1; }
  tup=$(since "$t0")
  checks=0
  while :; do
    c0=$(now)
    "$hv" check -all-pairs -json main.hcl > check.json 2> check.err || true
    checks=$((checks + 1))
    tcheck=$(since "$c0")
    read -r total bad < <(python3 -c 'import json; d=json.load(open("check.json")); print(len(d["pairs"]), d["broken"])' 2>/dev/null || echo "? ?")
    if [ "$bad" = 0 ] && [ "$total" = 870 ]; then break; fi
    if [ "$checks" -ge 10 ]; then
      echo "run $run: $bad of $total pairs still dead after $checks checks" >&2
      cat check.err >&2
      exit 1
    fi
  done
  tall=$(since "$t0")
  printf 'run %d: up returned after %.1f s; all 870 pairs answer ping and TCP %.1f s after up started (%d all-pairs check(s), the last took %.1f s)\n' \
    "$run" "$tup" "$tall" "$checks" "$tcheck"
  if w=$(grep 'Still waiting' up.log | tail -1); then echo "  up's last progress line: $w"; fi
  if [ "$run" = 1 ]; then
    sum=0; n=0; max=0; hubkb=0
    for pid in $(pgrep -f "hvctl agent -config $work/"); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = hvctl ] || continue
      kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
      sum=$((sum + kb)); n=$((n + 1)); [ "$kb" -gt "$max" ] && max=$kb
      cfg=$(tr '\0' '\n' < "/proc/$pid/cmdline" | grep -A1 -- '^-config$' | tail -1)
      if grep -q '"site.core.node.hub"' "$cfg"; then hubkb=$kb; fi
    done
    printf 'agent memory: %d agents, %.0f MiB RSS in all, %.1f MiB per agent on average, %.1f MiB the largest (the hub: %.1f MiB)\n' \
      "$n" "$(echo "$sum/1024" | bc -l)" "$(echo "$sum/$n/1024" | bc -l)" "$(echo "$max/1024" | bc -l)" "$(echo "$hubkb/1024" | bc -l)"
  fi
  "$hv" down main.hcl > /dev/null
done
