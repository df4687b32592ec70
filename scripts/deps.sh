#!/usr/bin/env bash
# deps.sh [-n] TARGET: install the Debian packages TARGET (demo or test)
# needs and lacks, from scripts/deps.txt, the one list make and .ci/run use.
#
# A package counts as present when its command is on PATH (with the sbin
# directories). As root with apt-get, the missing ones are installed
# quietly, with one progress line; otherwise the one command to run is
# printed and deps.sh exits 1. -n prints what would be done and changes
# nothing (exit 0 when nothing is missing, else 3).
#
# For tests: DEPS_LOOKUP_PATH replaces the PATH commands are looked up in;
# DEPS_UID replaces the user id.
set -euo pipefail
dry=0
if [ "${1:-}" = -n ]; then dry=1; shift; fi
target=${1:-}
case "$target" in
  demo | test) ;;
  *) echo "usage: scripts/deps.sh [-n] demo|test" >&2; exit 2 ;;
esac
list="$(cd "$(dirname "$0")" && pwd)/deps.txt"
lookup=${DEPS_LOOKUP_PATH:-$PATH:/usr/local/sbin:/usr/sbin:/sbin}
uid=${DEPS_UID:-$(id -u)}

missing=()
cmds=()
while read -r pkg cmd targets; do
  case "$pkg" in '' | '#'*) continue ;; esac
  case " $targets " in *" $target "*) ;; *) continue ;; esac
  if ! PATH="$lookup" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$pkg")
    cmds+=("$cmd")
  fi
done <"$list"

[ ${#missing[@]} = 0 ] && exit 0
cmd="apt-get install -y -qq --no-install-recommends ${missing[*]}"
have_apt=0
PATH="$lookup" command -v apt-get >/dev/null 2>&1 && have_apt=1

if [ "$dry" = 1 ]; then
  echo "missing for $target: ${missing[*]}"
  if [ "$uid" = 0 ] && [ "$have_apt" = 1 ]; then
    echo "would run: apt-get update -qq && $cmd"
  else
    echo "would ask to run: sudo apt-get update && sudo $cmd"
  fi
  exit 3
fi

if [ "$uid" != 0 ] || [ "$have_apt" = 0 ]; then
  why="not root"
  [ "$have_apt" = 0 ] && why="no apt-get on this machine"
  echo "make $target needs ${missing[*]}, which this machine lacks, and cannot install them ($why)." >&2
  if [ "$have_apt" = 1 ]; then
    echo "Run this once, then make $target again:" >&2
    echo "  sudo apt-get update && sudo $cmd" >&2
  else
    echo "Install the packages that provide these commands with your system's package manager, then make $target again:" >&2
    for i in "${!missing[@]}"; do echo "  ${cmds[$i]}  (Debian: ${missing[$i]})" >&2; done
  fi
  exit 1
fi

echo "make $target: installing ${#missing[@]} missing package(s) with apt-get: ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && $cmd; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "make $target: apt-get failed (its last lines are above); fix that and run make $target again." >&2
  exit 1
fi
echo "make $target: installed ${missing[*]}." >&2
