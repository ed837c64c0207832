#!/usr/bin/env bash
# Builds the tests once with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ (GCC,
# -fsanitize=address,undefined -fno-sanitize-recover=all: any report fails the test) and runs them
# with ctest. Any ASan or UBSan report is a bug to fix (docs/hardening.md lists the findings).
#   scripts/sanitize.sh                  # the default subset (see below), ctest -L unit
#   scripts/sanitize.sh -R 'checkpoint'  # extra ctest arguments select tests
#   TANDEM_SANITIZE_TARGETS=all scripts/sanitize.sh   # build and run everything (slow: see docs)
# Leak checking is on. Tests that limit their own address space (RLIMIT_AS) skip themselves
# under ASan, visibly.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${TANDEM_JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
mkdir -p build-asan
if ! cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_SANITIZE=address,undefined \
    -DTANDEM_CUDA=OFF -DTANDEM_BUILD_BENCH=OFF "${launcher[@]}" >build-asan/configure.log 2>&1; then
  cat build-asan/configure.log >&2
  exit 1
fi
# The default subset: every test of the parsers, the checkpoint code, the HTTP server, the
# pserver's shard logic and the fuzz replays (what takes untrusted input), which builds in
# minutes; the trainer's and operator's tests need the whole tree (TANDEM_SANITIZE_TARGETS=all).
default_targets=(metrics_test http_server_test yaml_json_test crc32c_test checkpoint_test
  resource_limits_test api_quantity_test api_training_job_test api_queue_test
  pserver_shard_test pserver_full_disk_test http_request_reader_test
  fuzz_yaml_json_replay fuzz_manifest_replay fuzz_prometheus_text_replay fuzz_http_request_replay
  fuzz_pserver_request_replay fuzz_checkpoint_replay tls_certificates_test)
read -r -a targets <<<"${TANDEM_SANITIZE_TARGETS:-${default_targets[*]}}"
if [[ "${targets[*]}" == all ]]; then
  cmake --build build-asan -j "$jobs"
  regex=()
else
  args=()
  for t in "${targets[@]}"; do args+=(--target "$t"); done
  cmake --build build-asan -j "$jobs" "${args[@]}"
  regex=(-R "^($(IFS='|'; echo "${targets[*]}"))\$")
fi
cd build-asan
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 3000 "${regex[@]}" -LE 'fuzz|gpu' "$@"
