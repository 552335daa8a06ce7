#!/usr/bin/env bash
# Installs the built tpsim into a temporary prefix and runs it from another folder with the source
# tree hidden (a private mount namespace lays an empty folder over it), so only what
# `cmake --install` put in the prefix can be found. Needs `unshare` (util-linux) and either root
# or unprivileged user namespaces. Usage: scripts/check-install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
src="$PWD"
build="$(cd "${1:-build}" && pwd)"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
userns=""
[ "$(id -u)" = 0 ] || userns="-r"
unshare $userns -m bash -euo pipefail -c "
  mount -t tmpfs none '$src'
  [ -z \"\$(ls -A '$src')\" ] || { echo 'the source tree is still visible' >&2; exit 1; }
  cd '$prefix/..'
  '$prefix/bin/tpsim' -q run > /dev/null
  '$prefix/bin/tpsim' -q run '$prefix/share/tpsim/examples/tp-vs-pp-70b.yaml' > /dev/null
  '$prefix/bin/tpsim' -q run -t dgx-h100 -m llama3-8b --set plan.tp=8 > /dev/null
  [ -s '$prefix/share/man/man1/tpsim.1' ] && [ -s '$prefix/share/bash-completion/completions/tpsim' ]
"
echo "installed tpsim ran from $prefix with the source tree hidden: default scenario, an installed example, presets by name"
