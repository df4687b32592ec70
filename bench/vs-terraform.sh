#!/usr/bin/env bash
# Side by side with Terraform on the same graph: SITES networks, SITES
# gateways and the rest workers (1,000 nodes: 50 sites of 20; 10,000: 50
# of 200). hvctl runs the sim provider with boot_time = "0s"; Terraform
# runs terraform_data resources in count form (no provider to download).
# Both at their default parallelism. For each size it prints plan, apply
# and the no-op re-plan with refresh: wall time, peak RSS and bytes
# written (GNU time's file system outputs), then Terraform/hvctl ratios.
#
#   bench/vs-terraform.sh [NODES...]        (default: 1000 10000)
#   TF_APPLY_LIMIT=SECONDS   bound Terraform's apply (default 3600); one
#                            that hits it is reported as a lower bound
#   HVCTL=PATH               the hvctl binary (default: built into bin/)
#
# Without terraform on PATH it says so and exits 0.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v terraform >/dev/null; then
  echo "bench/vs-terraform.sh: no terraform on PATH; skipping the comparison"
  exit 0
fi
command -v /usr/bin/time >/dev/null || { echo "bench/vs-terraform.sh needs GNU time (apt-get install time)" >&2; exit 1; }
hv=${HVCTL:-$root/bin/hvctl}
if [ -z "${HVCTL:-}" ]; then
  (cd "$root" && go build -o bin/hvctl ./cmd/hvctl)
fi
limit=${TF_APPLY_LIMIT:-3600}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "terraform: $(terraform version | head -1); hvctl: $hv; $(nproc) CPUs"

hvctl_template() { # sites per_site
  local sites=$1 per=$2
  echo 'provider "sim" "lab" {'
  echo '  boot_time = "0s"'
  echo '}'
  echo 'cluster "big" {'
  echo '  overlay {'
  echo '    cidr = "100.64.0.0/10"'
  echo '    hubs = ["s0.gw"]'
  echo '  }'
  for i in $(seq 0 $((sites - 1))); do
    local roles='["gateway"]' pub=false
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
      count = $((per - 1))
      instance {
        cpus   = 4
        memory = "8GiB"
      }
    }
  }
EOT
  done
  echo '}'
}

# The same graph: workers depend on their site's network and on the hub
# (the first gateway), gateways on their network.
terraform_config() { # sites per_site
  cat <<EOT
locals {
  sites    = $1
  per_site = $(($2 - 1))
}
resource "terraform_data" "network" {
  count = local.sites
  input = { cidr = "10.\${count.index}.0.0/16" }
}
resource "terraform_data" "gateway" {
  count = local.sites
  input = { network = terraform_data.network[count.index].id, cpus = 2, roles = count.index == 0 ? ["gateway", "hub"] : ["gateway"] }
}
resource "terraform_data" "worker" {
  count = local.sites * local.per_site
  input = {
    network = terraform_data.network[floor(count.index / local.per_site)].id
    hub     = terraform_data.gateway[0].id
    cpus    = 4
    memory  = "8GiB"
  }
}
EOT
}

# measure LABEL LIMIT CMD...: runs CMD in the current directory; sets
# secs, rss (MiB), out (MiB written), hit (1 when the limit stopped it).
measure() {
  local label=$1 lim=$2; shift 2
  hit=0
  set +e
  /usr/bin/time -f "%e %M %O" -o "$work/time" timeout "$lim" "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  set -e
  if [ $rc = 124 ]; then
    hit=1
  elif [ $rc != 0 ] && [ $rc != 2 ]; then # plan -detailed-exitcode style 2 is fine
    echo "$label failed ($rc):" >&2; tail -5 "$work/err" >&2; tail -5 "$work/out" >&2; exit 1
  fi
  read -r secs kib blocks < <(tail -1 "$work/time")
  rss=$((kib / 1024))
  out=$((blocks / 2048))
  if [ $hit = 1 ]; then
    printf '  %-34s >= %8.1f s (hit the %s s limit: a lower bound)\n' "$label" "$secs" "$lim"
  else
    printf '  %-34s %10.2f s  %6d MiB peak RSS  %6d MiB written\n' "$label" "$secs" "$rss" "$out"
  fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else printf "inf" }'; }

for n in "${sizes[@]}"; do
  sites=50
  per=$((n / sites))
  echo
  echo "== $n nodes ($sites networks, $sites gateways, $((n - sites)) workers) =="
  hd="$work/hvctl-$n" td="$work/tf-$n"
  mkdir -p "$hd" "$td"
  hvctl_template $sites $per > "$hd/main.hcl"
  terraform_config $sites $per > "$td/main.tf"
  (cd "$td" && terraform init -input=false > /dev/null)

  cd "$hd"
  measure "hvctl plan" 3600 "$hv" plan main.hcl;                       hp=$secs hpr=$rss
  measure "hvctl apply" 7200 "$hv" apply -auto-approve main.hcl;       ha=$secs har=$rss hao=$out
  measure "hvctl no-op re-plan with refresh" 3600 "$hv" plan main.hcl; hr=$secs hrr=$rss
  grep -q "No changes\|no differences" "$work/out" || { echo "hvctl re-plan has changes" >&2; tail -3 "$work/out" >&2; exit 1; }

  cd "$td"
  measure "terraform plan" 3600 terraform plan -input=false -no-color;                 tp=$secs
  measure "terraform apply" "$limit" terraform apply -input=false -no-color -auto-approve; ta=$secs tahit=$hit
  tr=""
  if [ "$tahit" = 0 ]; then
    measure "terraform no-op re-plan with refresh" 3600 terraform plan -input=false -no-color; tr=$secs
  else
    echo "  terraform no-op re-plan             (not run: the apply did not finish)"
  fi
  cd "$root"
  lb=""; [ "$tahit" = 1 ] && lb=" (at least)"
  echo "  ratios, Terraform / hvctl: plan $(ratio "$tp" "$hp")x, apply $(ratio "$ta" "$ha")x$lb${tr:+, no-op re-plan with refresh $(ratio "$tr" "$hr")x}"
  echo "  hvctl apply wrote $hao MiB (state journal, snapshots, sim world)"
done
