#!/usr/bin/env bash
# Runs every Fuzz* target in the module for the given time each, then
# keeps what the fuzzer found interesting (up to 40 inputs per target)
# in the package's testdata/fuzz/FuzzX, so plain `go test` replays it.
set -euo pipefail
t=${1:-15s}
cd "$(dirname "$0")/.."
cache=$(go env GOCACHE)/fuzz
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //' | sort -u); do
    echo "== $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
    if [ -d "$cache/$pkg/$f" ]; then
      mkdir -p "$dir/testdata/fuzz/$f"
      ls -S "$cache/$pkg/$f" | tail -40 | while read -r x; do cp -n "$cache/$pkg/$f/$x" "$dir/testdata/fuzz/$f/"; done
    fi
  done
done
