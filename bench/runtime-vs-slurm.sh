#!/usr/bin/env bash
# hvctl's builtin scheduler against a real SLURM, on this machine, in one
# run: N jobs submitted one CLI call at a time to each (hvctl submit on a
# local cluster with two 2-CPU workers; sbatch on a one-node SLURM with
# 100 slots), then the time until all have completed. Prints each figure
# and the ratios. Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hv="$root/bin/hvctl"
N=${N:-200}
[ "$(id -u)" = 0 ] || { echo "bench/runtime-vs-slurm.sh needs root" >&2; exit 1; }
work=$(mktemp -d)
trap '"$hv" -chdir="$work" down main.hcl >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
sed -n '/^cat > "\$work\/main.hcl" <<.EOT.$/,/^EOT$/p' "$root/bench/submit-latency.sh" | sed '1d;$d' > "$work/main.hcl"
cd "$work"
"$hv" up main.hcl > /dev/null
t0=$(date +%s.%N)
for i in $(seq 1 "$N"); do "$hv" submit main.hcl -- true > /dev/null; done
t1=$(date +%s.%N)
while [ "$("$hv" jobs -status done -json main.hcl | grep -c '"id"')" -lt "$N" ]; do sleep 0.2; done
t2=$(date +%s.%N)
hs=$(echo "$N / ($t1 - $t0)" | bc -l); he=$(echo "$N / ($t2 - $t0)" | bc -l)
printf 'hvctl submit (sequential CLI): %d jobs in %.2f s = %.0f jobs/s; all done after %.2f s = %.0f jobs/s end to end\n' "$N" "$(echo "$t1 - $t0" | bc)" "$hs" "$(echo "$t2 - $t0" | bc)" "$he"
"$hv" down main.hcl > /dev/null
out=$(N=$N ARRAY=${ARRAY:-200} OVERSUBSCRIBE=${OVERSUBSCRIBE:-50} "$root/bench/slurm/anchor.sh" 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -E '^slurm'
ss=$(echo "$out" | grep 'sbatch (sequential CLI): [0-9]* jobs in' | sed 's/.*= \([0-9.]*\) jobs\/s.*/\1/')
se=$(echo "$out" | grep 'sbatch (sequential CLI): all' | sed 's/.*= \([0-9.]*\) jobs\/s.*/\1/')
printf 'ratio hvctl/slurm: submit %.2f, end to end %.2f\n' "$(echo "$hs / $ss" | bc -l)" "$(echo "$he / $se" | bc -l)"
