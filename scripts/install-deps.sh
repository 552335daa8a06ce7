#!/usr/bin/env bash
# Installs tpsim's build dependencies from Debian packages, only those missing. Uses sudo only when
# not root and sudo exists; nothing is downloaded outside apt.
#   --tests  also what the test suite needs: chromium renders the HTML report headless in
#            test_report_html, openblas is the reference the numerics benchmark compares with,
#            python3-torch and python3-numpy run tests/oracle/torch_oracle.py, the outside oracle
#            test_oracle checks tpsim's kernels against (sharded and unsharded runs share every
#            kernel, so only an independent implementation catches a wrong one).
set -euo pipefail
packages=(build-essential cmake pkg-config libeigen3-dev libsimgrid-dev libyaml-cpp-dev libspdlog-dev
          libfmt-dev doctest-dev libcli11-dev nlohmann-json3-dev)
[ "${1:-}" = "--tests" ] && packages+=(chromium libopenblas-dev python3-torch python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "tpsim: installing missing Debian packages: ${missing[*]}" >&2
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "tpsim: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
