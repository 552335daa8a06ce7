#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the whole CTest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
# test_report_html renders the HTML report in headless Chromium (Debian's chromium package).
command -v chromium >/dev/null || { s=$([ "$(id -u)" -eq 0 ] || echo sudo); $s apt-get update -qq && $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
ctest --test-dir build --output-on-failure -j"$(nproc)"
