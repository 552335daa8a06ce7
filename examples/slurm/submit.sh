#!/usr/bin/env bash
# Submits the sharded sweep and its merge: the merge starts when every array task has ended.
# Usage: TPSIM=/path/to/tpsim OUT=/shared/plan-results examples/slurm/submit.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
array=$(sbatch --parsable --export=ALL "$here/plan-array.sbatch")
sbatch --export=ALL --dependency="afterany:${array%%;*}" "$here/merge.sbatch"
