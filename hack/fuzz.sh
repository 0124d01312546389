#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 60s) and prints a summary.
set -euo pipefail
fuzztime=${1:-60s}
cd "$(dirname "$0")/.."
fails=0
while IFS= read -r line; do
  file=${line%%:*}
  target=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "== $pkg $target ($fuzztime)"
  if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"; then
    fails=$((fails + 1))
  fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' api internal)
echo "fuzz: $fails target(s) failed"
[[ $fails -eq 0 ]]
