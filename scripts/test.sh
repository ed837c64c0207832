#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# CI compiles and links every CUDA file: a missing toolkit fails here rather than skipping.
TANDEM_CMAKE_ARGS="-DTANDEM_CUDA=ON ${TANDEM_CMAKE_ARGS:-}" scripts/build.sh
cd build
ctest --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 1500 "$@"
