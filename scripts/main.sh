#!/usr/bin/env bash
# The README's main job: installs what is missing, builds (Release) and trains the example
# TrainingJob on this machine with `tandem run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/bin/tandem run examples/fashion-mnist.yaml "$@"
