#!/usr/bin/env bash
# The test command's second stage (scripts/test.sh): the spec loader, its test suites and the
# fuzzer built with AddressSanitizer and UndefinedBehaviorSanitizer (every report fatal), and the
# fuzzer run over the seed corpus under them. Only the spec stage: input handling is where hostile
# bytes arrive, and a sanitized build of the whole simulator would double the suite's time.
#   scripts/sanitize.sh              the bounded run the test command makes (3000 inputs, seed 1)
#   FUZZ_ITERATIONS=200000 FUZZ_SEED=7 scripts/sanitize.sh    a long hunt (findings in build-sanitize/fuzz-findings)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPSIM_SANITIZE=ON -DTPSIM_NATIVE=OFF -DTPSIM_UNITY_BUILD=ON >/dev/null
cmake --build build-sanitize -j"$(nproc)" --target sanitize_stage
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
ctest --test-dir build-sanitize --output-on-failure -R '^(test_spec_bad_inputs|test_spec_load)$'
build-sanitize/tests/fuzz_spec --seed "${FUZZ_SEED:-1}" --iterations "${FUZZ_ITERATIONS:-3000}" \
  --findings build-sanitize/fuzz-findings topologies models examples tests/data/good tests/data/bad
