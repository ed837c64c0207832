#!/usr/bin/env bash
# Configures and builds Tandem into build/ (Release). Extra arguments go to cmake's configure step.
# Binaries land in build/bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${TANDEM_JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/tmp/tandem-cmake.log 2>&1 || {
  cat /tmp/tandem-cmake.log >&2; exit 1; }
grep -E '^-- Tandem' /tmp/tandem-cmake.log || true
cmake --build build -j "$jobs"
