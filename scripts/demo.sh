#!/usr/bin/env bash
# make demo: the main job end to end on this machine.
#
# As root: a real two-site cluster from examples/local-hybrid.hcl on the
# local provider (network namespaces, NAT, WireGuard through the hub):
# validate -> plan -> up -> status -> check -all-pairs (ping and TCP across sites) -> exec ->
# overlay show -> down, then a check that nothing is left behind.
# Without root it says so and runs the same steps on the sim provider.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hv="$root/bin/hvctl"
work=$(mktemp -d "${TMPDIR:-/tmp}/hvctl-demo.XXXXXX")
tmpl=local-hybrid.hcl
if [ "$(id -u)" != 0 ]; then
  echo "make demo: the local provider builds real namespaces and needs root;" >&2
  echo "running the same steps on the sim provider instead (sudo make demo for the real cluster)." >&2
  tmpl=sim-hybrid.hcl
fi
cp "$root/examples/$tmpl" "$work/"
cd "$work"
cleanup() {
  # Leave nothing behind, even when a step failed.
  "$hv" down "$tmpl" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ hvctl %s\033[0m\n' "$*"; "$hv" "$@"; }

step validate "$tmpl"
step plan -out=demo.hvplan "$tmpl"
step up "$tmpl"
step status "$tmpl"

if [ "$tmpl" = local-hybrid.hcl ]; then
  # Every node reaches every other node over the overlay, across sites:
  # hvctl check pings and opens a TCP connection from inside each node
  # to each other node, and exits 1 naming any pair that does not answer.
  step check -all-pairs "$tmpl"
  # A command on a node, inside its namespace: its WireGuard interface.
  step exec onprem.frontend "$tmpl" -- ip -brief address show
  step overlay show "$tmpl"

  # Bursting: more work than onprem can take (2 workers x 2 CPUs). The
  # elastic daemon, which the hub's manager started (hvctl elastic run,
  # on this host), grows the cloud pool, the jobs run in both sites, and
  # the pool shrinks back after idle_time.
  step submit -n 24 "$tmpl" -- sh -c 'sleep 10; echo ran on $HVCTL_NODE'
  elog=$(ls .hvctl/local/nodes/*/elastic.log | head -1)
  printf '\n(the elastic daemon the hub started logs to %s)\n' "$elog"
  for i in $(seq 1 60); do
    sleep 2
    line=$("$hv" status -json "$tmpl" | grep -c '"pool": "cloud.burst"' || true)
    left=$("$hv" jobs -json "$tmpl" | grep -c '"state": "\(queued\|assigned\|running\)"' || true)
    printf '  [%3ss] cloud burst nodes: %s   jobs not finished: %s\n' "$((i * 2))" "$line" "$left"
    [ "$left" = 0 ] && [ "$line" = 0 ] && [ "$i" -gt 3 ] && break
  done
  grep -o 'action="[^"]*"' "$elog" | cut -d'"' -f2 | cut -c1-100 | sed 's/^/  decision: /'
  printf '\n\033[1mJobs by node:\033[0m\n'
  "$hv" jobs -json "$tmpl" | grep -o '"node": "[^"]*"' | cut -d'"' -f4 | sort | uniq -c | sed 's/^/  /'
else
  step sim list "$tmpl"
fi

step plan -detailed-exitcode "$tmpl"
step down "$tmpl"

# The elasticity simulator on paper 003's published workload, with its
# HTML report (node states, queue depth, cost over time).
report="$root/demo-report.html"
step elastic simulate -f "$root/examples/hybrid-audio.hcl" -w "$root/examples/workloads/hybrid-audio.json" -report "$report"

if [ "$tmpl" = local-hybrid.hcl ]; then
  left=$(ip netns list | grep -c '^hv-demo-' || true)
  [ "$left" = 0 ] || { echo "demo: $left namespaces left behind" >&2; exit 1; }
  pgrep -f "$work" >/dev/null && { echo "demo: agent processes left behind" >&2; exit 1; }
else
  left=$("$hv" sim list -json "$tmpl")
  [ "$left" = "[]" ] || { echo "demo: machines left behind after down: $left" >&2; exit 1; }
fi
printf '\n\033[1mDemo complete:\033[0m the cluster was created, joined over WireGuard, inspected and destroyed; nothing is left behind.\n'
