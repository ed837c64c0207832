#!/usr/bin/env bash
# The README's main job: installs what is missing, builds (Release) the three binaries it needs,
# and trains the example TrainingJob (2 workers, ring all-reduce; no pserver processes: nothing lives on one) on this
# machine with `tandem run`. Extra arguments go to `tandem run` (e.g. --run-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The main job trains on the CPU: a fresh machine skips the CUDA toolkit (1.5 GB of wheels); a
# build/ that scripts/test.sh already configured keeps its settings.
if [[ ! -f build/CMakeCache.txt ]]; then
  export TANDEM_CMAKE_ARGS="-DTANDEM_CUDA=OFF ${TANDEM_CMAKE_ARGS:-}"
fi
scripts/build.sh tandem tandem-trainer tandem-pserver
exec build/bin/tandem run examples/fashion-mnist.yaml "$@"
