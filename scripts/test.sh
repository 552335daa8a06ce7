#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the whole CTest suite, then the
# input-handling stage again under the sanitizers with the fuzzer (scripts/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTPSIM_UNITY_BUILD=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
# Second stage: the spec loader, its suites and the fuzzer under ASan + UBSan (scripts/sanitize.sh).
scripts/sanitize.sh
