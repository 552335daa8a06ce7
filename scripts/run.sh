#!/usr/bin/env bash
# The README's main command: install what is missing, build, run tpsim (default scenario if no args).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTPSIM_UNITY_BUILD=ON >/dev/null
cmake --build build -j"$(nproc)" --target tpsim
exec build/tpsim run "$@"
