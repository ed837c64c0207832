#!/usr/bin/env bash
# Configures and builds Tandem into build/ (Release). Binaries land in build/bin/.
#   scripts/build.sh                       # everything (libraries, binaries, tests, benchmarks)
#   scripts/build.sh tandem tandem-trainer # only these targets (and what they need)
# Extra configure options: TANDEM_CMAKE_ARGS="-DTANDEM_CUDA=OFF" scripts/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${TANDEM_JOBS:-$(nproc)}
# ccache, when installed, makes rebuilds of unchanged files (other checkouts, clean clones) cheap:
# paths are hashed relative to the checkout, so every clone of the repo shares the cache.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
# The CUDA backend compiles (no GPU needed) against the toolkit scripts/install-cuda.sh provides:
# an installed one, or PyPI's CUDA wheels in the cache. TANDEM_CUDA=OFF skips it; with ON (as
# scripts/test.sh and CI configure) a missing toolkit fails the configure instead of skipping.
cuda_args=()
if [[ " ${TANDEM_CMAKE_ARGS:-} " != *" -DTANDEM_CUDA=OFF "* ]]; then
  if cuda_root=$(scripts/install-cuda.sh); then
    cuda_args=(-DTANDEM_CUDA_ROOT="$cuda_root")
  else
    echo "build: scripts/install-cuda.sh failed; configuring without a CUDA toolkit" >&2
  fi
fi
# shellcheck disable=SC2086
if ! cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "${cuda_args[@]}" ${TANDEM_CMAKE_ARGS:-} >.cmake-configure.log 2>&1; then
  cat .cmake-configure.log >&2
  exit 1
fi
grep -E '^-- (Tandem|trainer/collective: NCCL)' .cmake-configure.log || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j "$jobs" "${targets[@]}"
