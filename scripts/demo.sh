#!/usr/bin/env bash
# make demo: the main job end to end on this machine.
# Until the local provider lands this runs the sim provider: plan -> up ->
# status -> down of examples/sim-hybrid.hcl, in a scratch directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hv="$root/bin/hvctl"
work=$(mktemp -d "${TMPDIR:-/tmp}/hvctl-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$root/examples/sim-hybrid.hcl" "$work/"
cd "$work"

step() { printf '\n\033[1m$ hvctl %s\033[0m\n' "$*"; "$hv" "$@"; }

step validate sim-hybrid.hcl
step plan -out=demo.hvplan sim-hybrid.hcl
step up sim-hybrid.hcl
step status sim-hybrid.hcl
step sim list sim-hybrid.hcl
step plan -detailed-exitcode sim-hybrid.hcl
step down sim-hybrid.hcl
left=$("$hv" sim list -json sim-hybrid.hcl)
if [ "$left" != "[]" ]; then
  echo "demo: machines left behind after down: $left" >&2
  exit 1
fi
printf '\n\033[1mDemo complete:\033[0m the cluster was created, inspected and destroyed; nothing is left in the sim cloud.\n'
