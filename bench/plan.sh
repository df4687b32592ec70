#!/usr/bin/env bash
# Times `hvctl plan` of a 10,000-node, 50-site template end to end (parse,
# check, graph, diff, render) and prints wall time and peak RSS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hv="$root/bin/hvctl"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  echo 'provider "sim" "lab" {}'
  echo 'cluster "big" {'
  echo '  overlay {'
  echo '    cidr = "100.64.0.0/10"'
  echo '    hubs = ["s0.gw"]'
  echo '  }'
  for i in $(seq 0 49); do
    roles='["gateway"]'; pub=false
    [ "$i" = 0 ] && roles='["gateway", "hub"]' && pub=true
    cat <<EOT
  site "s$i" {
    provider = provider.sim.lab
    gateway  = "gw"
    network { cidr = "10.$i.0.0/16" }
    node "gw" {
      roles     = $roles
      public_ip = $pub
      instance { cpus = 2 }
    }
    pool "p" {
      count = 199
      instance {
        cpus   = 4
        memory = "8GiB"
      }
    }
  }
EOT
  done
  echo '}'
} > "$work/big.hcl"
run() { # label, args...
  local label=$1; shift
  /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$hv" "$@" > "$work/out.txt" 2> "$work/time.txt" || { cat "$work/time.txt"; exit 1; }
  tail -1 "$work/time.txt"
}
command -v /usr/bin/time >/dev/null || { echo "bench/plan.sh needs GNU time (apt-get install time)" >&2; exit 1; }
run "validate (10,000 nodes, 50 sites)" validate "$work/big.hcl"
run "plan     (10,000 nodes, 50 sites)" plan -refresh=false "$work/big.hcl"
echo "          $(grep '^Plan:' "$work/out.txt")"
run "plan -json (10,000 nodes, 50 sites)" plan -json -refresh=false "$work/big.hcl"
