#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, -fsanitize=fuzzer,address,undefined) in
# build-fuzz/ and runs each for a time budget. CI runs it through the ctest test `fuzz_smoke`
# (label fuzz) with the default budget; run it longer by hand.
#   scripts/fuzz.sh                 # every target, ${TANDEM_FUZZ_SECONDS:-20} s each
#   scripts/fuzz.sh 300             # every target, 5 minutes each
#   scripts/fuzz.sh 60 http_request # one target
# The corpus each run grows is kept outside git in ${TANDEM_CACHE:-/var/cache/tandem}/fuzz-corpus/
# (the committed seeds in tests/fuzz/corpus/ are read, never written). A crash leaves its input in
# build-fuzz/artifacts/<target>/ and fails the script: fix the bug, then commit the input to
# tests/fuzz/regressions/<target>/ so the normal suite replays it (fuzz_<target>_replay).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${TANDEM_FUZZ_SECONDS:-20}}
[[ -n "$seconds" ]] || seconds=20
shift || true
all=(yaml_json manifest prometheus_text http_request pserver_request checkpoint serve_request)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

for tool in clang-14 clang++-14; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool is missing (scripts/install-deps.sh installs clang-14)" >&2; exit 1; }
done
rt=$(clang++-14 -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if [[ ! -f "$rt" ]] && ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: libFuzzer's runtime is missing (scripts/install-deps.sh installs libclang-rt-14-dev)" >&2
  exit 1
fi

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Paths relative to the checkout, and (this build has -g) the working directory left out of the
  # hash: every clone of the repo, CI's fresh one included, then shares the cached objects.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=1
fi
mkdir -p build-fuzz
if ! cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_CXX_COMPILER=clang++-14 -DTANDEM_FUZZ=ON -DTANDEM_SANITIZE=address,undefined \
    -DTANDEM_CUDA=OFF -DTANDEM_BUILD_BENCH=OFF "${launcher[@]}" >build-fuzz/configure.log 2>&1; then
  cat build-fuzz/configure.log >&2
  exit 1
fi
build_targets=()
for t in "${targets[@]}"; do build_targets+=(--target "fuzz_$t"); done
cmake --build build-fuzz -j "${TANDEM_JOBS:-$(nproc)}" "${build_targets[@]}"

cache=${TANDEM_CACHE:-/var/cache/tandem}/fuzz-corpus
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$cache/$t" "build-fuzz/artifacts/$t"
  log=build-fuzz/fuzz-$t.log
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  echo "fuzz: $t for ${seconds}s"
  # -rss_limit_mb/-malloc_limit_mb: an input that makes a parser allocate more than that is a
  # finding too. -timeout: an input that takes 10 s is a hang.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
     "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t/" \
       "${dict[@]}" "$cache/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    corp=$(find "$cache/$t" -type f | wc -l)
    summary+=("$t: ok, $runs runs in ${seconds}s, $cov, corpus $corp inputs")
  else
    tail -40 "$log" >&2
    failed+=("$t")
    summary+=("$t: FAILED (see $log and build-fuzz/artifacts/$t/)")
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: crashes or limit violations in: ${failed[*]}" >&2
  exit 1
fi
