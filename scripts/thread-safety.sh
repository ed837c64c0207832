#!/usr/bin/env bash
# Checks the lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED) of the libraries
# and binaries with clang's thread-safety analysis. Every source that can see a mutex or an
# annotation (in itself or in a project header it includes; TANDEM_THREAD_SAFETY_ALL=1: every
# source) is compiled with
# clang++-14 -fsyntax-only -Wthread-safety -Werror=thread-safety, using the flags of an existing
# CMake build's compile_commands.json (GCC's build/ by default, whose generated protobuf headers
# it reuses). Nothing is code-generated or linked, so it costs a parse of each file and no second
# build directory. A read or write of guarded state without its mutex, or a call of a
# *Locked() function without the lock, fails it with clang's message naming the member.
# CI runs it as the ctest test `thread_safety_check` (label thread-safety).
#   scripts/thread-safety.sh             # the sources that see locks, with build/'s flags
#   scripts/thread-safety.sh build-asan  # another build's flags
#   scripts/thread-safety.sh build pserver/shard.cc operator/kube/work_queue.cc   # some files
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++-14 >/dev/null || { echo "thread-safety: clang++-14 is missing (scripts/install-deps.sh installs clang-14)" >&2; exit 1; }
build=${1:-build}
shift || true
all=()
[[ "${TANDEM_THREAD_SAFETY_ALL:-0}" == 1 ]] && all=(--all)
exec python3 scripts/tools/thread_safety_check.py --source "$PWD" --build "$build" \
  --jobs "${TANDEM_JOBS:-$(nproc)}" "${all[@]}" "$@"
