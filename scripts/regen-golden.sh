#!/usr/bin/env bash
# Rewrites every golden transcript listed in tests/data/golden/cases.txt from the built binary
# (build/tpsim). Run after a deliberate change, then review `git diff tests/data/golden`.
set -euo pipefail
cd "$(dirname "$0")/.."
export TPSIM="$PWD/build/tpsim"
[ -x "$TPSIM" ] || { echo "build tpsim first: cmake --build build --target tpsim" >&2; exit 1; }
grep -v '^#' tests/data/golden/cases.txt | grep -v '^$' | while IFS= read -r line; do
  name="${line%%:*}"
  command="${line#*: }"
  TMP="$(mktemp -d)"
  export TMP
  set +e
  out="$(sh -c "$command" 2>&1)"
  status=$?
  set -e
  rm -rf "$TMP"
  # Paths under the checkout read <repo>, so transcripts hold wherever the repository is cloned.
  printf '%s\n[exit %d]\n' "${out//$PWD/<repo>}" "$status" > "tests/data/golden/$name.txt"
  echo "golden: $name (exit $status)"
done
