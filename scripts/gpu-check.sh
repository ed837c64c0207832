#!/usr/bin/env bash
# The one prepared run for the GPU machine: the trainer's GPU device through the CUDA plugin
# (tandem-trainer --check-device), every `gpu`-labelled test, a short GPU `tandem run` of
# examples/fashion-mnist-cnn-gpu.yaml, then bench/gpu-vs-pytorch, with logs and JSON records
# under $OUT, in about 9 minutes.
#   scripts/gpu-check.sh --help | --prepare | [no argument: run]
# Without a usable GPU it stops after the first step with exit status 3 and the trainer's reason
# (what a GPU job does there), so the script can be checked on a CPU machine too.
#
# The GPU machine has nvcc 13.0, CMake, PyTorch 2.11 (with cuDNN/cuBLAS/NCCL wheels in its venv)
# but no registry and not our Debian build dependencies (abseil, oneDNN, gRPC, GoogleTest), so the
# binaries are built HERE and carried:
#   scripts/gpu-check.sh --prepare     # on this machine: build the gpu targets, pack .cache/gpu-carry
#   (device tool) carry [".cache/gpu-carry"], command: scripts/gpu-check.sh
# On the GPU machine the carried binaries run against the carried non-CUDA libraries and the
# machine's own CUDA libraries (the PyTorch venv's nvidia/* wheels, or /usr/local/cuda).
# Without a carry it tries a build with the machine's toolchain (TANDEM_CUDA=ON) instead.
# Exit status: non-zero when a gpu test failed or nothing could be run.
set -uo pipefail
cd "$(dirname "$0")/.."
carry=.cache/gpu-carry

case "${1:-}" in
  "" | --prepare) ;;
  -h | --help)
    sed -n '2,/^set -uo/p' "$0" | sed -n 's/^# \{0,1\}//p'
    exit 0 ;;
  *)
    echo "gpu-check: unknown argument '$1' (--prepare builds and packs the carry here; no argument runs it)" >&2
    exit 2 ;;
esac

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  TANDEM_CMAKE_ARGS="-DTANDEM_CUDA=ON ${TANDEM_CMAKE_ARGS:-}" TANDEM_JOBS=${TANDEM_JOBS:-2} \
    scripts/build.sh gpu_parity_test cuda_smoke_test gpu_whole_model_test collective_nccl_test \
    gpu_layers_bench tandem tandem-trainer tandem-pserver tandem-cuda
  rm -rf "$carry"
  mkdir -p "$carry/bin" "$carry/lib/tandem"
  cp build/tests/gpu_parity_test build/tests/cuda_smoke_test build/tests/gpu_whole_model_test \
    build/tests/collective_nccl_test build/bin/gpu_layers_bench "$carry/bin/"
  # The GPU job: the shipped binaries and the plugin where tandem-trainer looks for it
  # (bin/../lib/tandem/libtandem-cuda.so), stripped to fit the carry.
  cp build/bin/tandem build/bin/tandem-trainer build/bin/tandem-pserver "$carry/bin/"
  strip --strip-unneeded "$carry/bin/tandem" "$carry/bin/tandem-trainer" "$carry/bin/tandem-pserver"
  cp build/lib/tandem/libtandem-cuda.so "$carry/lib/tandem/"
  strip --strip-unneeded "$carry/lib/tandem/libtandem-cuda.so"
  cp examples/fashion-mnist-cnn-gpu.yaml "$carry/"
  # The whole-model test's data and the GPU job's: the first 12,800 Fashion-MNIST training
  # examples (200 steps of 64) and 2,000 test examples, cut from the Debian package's files (the
  # GPU machine has no package).
  mkdir -p "$carry/fashion-mnist"
  python3 - "$carry/fashion-mnist" <<'EOF'
import gzip, struct, sys
src = "/usr/share/datasets/fashion-mnist"
for name, header, n in (("train-images-idx3-ubyte.gz", 16, 12800), ("train-labels-idx1-ubyte.gz", 8, 12800),
                        ("t10k-images-idx3-ubyte.gz", 16, 2000), ("t10k-labels-idx1-ubyte.gz", 8, 2000)):
    data = gzip.open(f"{src}/{name}").read()
    magic, count = struct.unpack(">II", data[:8])
    per = (len(data) - header) // count
    out = data[:4] + struct.pack(">I", n) + data[8:header] + data[header:header + n * per]
    with gzip.open(f"{sys.argv[1]}/{name}", "wb") as f:
        f.write(out)
EOF
  # Every shared library they need except glibc's and CUDA's (the GPU machine brings its own).
  for b in "$carry"/bin/* "$carry"/lib/tandem/*.so; do
    ldd "$b" | awk '$3 ~ /^\// {print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      # glibc and the compiler runtime: the GPU machine's are newer (an older libstdc++ first on
      # the path would break its PyTorch); CUDA's: the GPU machine brings its own.
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*|libgomp*|libcuda.so*|libcudart.so*|libcublas*|libcudnn*|libnccl*) ;;
      *) [[ -e "$carry/lib/$(basename "$lib")" ]] || cp -L "$lib" "$carry/lib/" ;;
    esac
  done
  cp bench/gpu-vs-pytorch/*.py "$carry/"
  # 80 MB unpacked (oneDNN alone is 40 MB) is over the device tool's 64 MiB carry: ship one gzip
  # tar (32 MB), unpacked on the GPU machine.
  tar -C "$carry" -cf - . | gzip -6 >"$carry.tar.gz.tmp"
  rm -rf "$carry"
  mkdir -p "$carry"
  mv "$carry.tar.gz.tmp" "$carry/carry.tar.gz"
  du -sh "$carry"
  exit 0
fi

# The packed carry is unpacked beside it (never into it: the carry must stay under the limit).
if [[ -f "$carry/carry.tar.gz" ]]; then
  rm -rf "$carry-unpacked"
  mkdir -p "$carry-unpacked"
  tar -C "$carry-unpacked" -xzf "$carry/carry.tar.gz" || { echo "gpu-check: cannot unpack $carry/carry.tar.gz" >&2; exit 1; }
  carry=$carry-unpacked
fi

OUT=${OUT:-/tmp/tandem-gpu-check}
mkdir -p "$OUT"
log=$OUT/gpu-check.log
exec > >(tee -a "$log") 2>&1
echo "gpu-check: $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python=$(command -v python3)

# CUDA libraries: the PyTorch venv's nvidia wheels first (cuDNN is not in the bare toolkit).
cuda_libs=$("$python" - <<'EOF' 2>/dev/null
import glob, os
import nvidia
roots = [os.path.join(p) for p in nvidia.__path__]
libs = sorted({os.path.dirname(f) for r in roots for f in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True)})
print(":".join(libs))
EOF
)
# Our binaries (not PyTorch, which finds its own) get the CUDA libraries and the carried ones.
tandem_ld="${cuda_libs:+$cuda_libs:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"

status=0
if [[ -d "$carry/bin" ]]; then
  bindir=$carry/bin
  tandem_ld="$PWD/$carry/lib:$tandem_ld"
  export TANDEM_SOURCE_DIR=$PWD TANDEM_FASHION_MNIST_DIR=$PWD/$carry/fashion-mnist
  # 1. The trainer's own way to its GPU: the plugin beside it, device 0. Without a usable GPU
  # nothing below can run: stop here with the trainer's reason.
  echo "== tandem-trainer --check-device"
  LD_LIBRARY_PATH=$tandem_ld timeout 30 "$bindir/tandem-trainer" --check-device \
    "$carry/fashion-mnist-cnn-gpu.yaml" >"$OUT/check-device.log" 2>&1
  code=$?
  cat "$OUT/check-device.log"
  if ((code != 0)); then
    echo "gpu-check: no usable GPU (tandem-trainer --check-device exited $code); stopping"
    exit 3
  fi
  # Seconds per step: check-device 30, these 300, the GPU job 120 and the bench 150 stay inside
  # one 10-minute device call (typical runs take far less).
  for t_limit in cuda_smoke_test:30 gpu_parity_test:90 gpu_whole_model_test:120 \
      collective_nccl_test:60; do
    t=${t_limit%%:*}
    echo "== $t"
    if ! LD_LIBRARY_PATH=$tandem_ld timeout "${t_limit##*:}" "$bindir/$t" --gtest_output="json:$OUT/$t.json" >"$OUT/$t.log" 2>&1; then
      status=1
    fi
    tail -5 "$OUT/$t.log"
    if grep -q '\[  SKIPPED \]' "$OUT/$t.log"; then
      echo "gpu-check: $t SKIPPED cases on a GPU machine: that is a failure here"
      grep -A1 'Skipped' "$OUT/$t.log" | head -4
      status=1
    fi
  done
else
  echo "gpu-check: no $carry; building with this machine's toolchain"
  if ! TANDEM_CMAKE_ARGS="-DTANDEM_CUDA=ON" TANDEM_JOBS=16 scripts/build.sh gpu_parity_test \
      cuda_smoke_test gpu_whole_model_test collective_nccl_test gpu_layers_bench >"$OUT/build.log" 2>&1; then
    tail -30 "$OUT/build.log"
    echo "gpu-check: build failed (see build.log)"
    exit 1
  fi
  bindir=build/bin
  (cd build && LD_LIBRARY_PATH=$tandem_ld timeout 300 ctest -L gpu --output-on-failure --output-junit "$OUT/ctest-gpu.xml") \
    >"$OUT/ctest-gpu.log" 2>&1 || status=1
  tail -15 "$OUT/ctest-gpu.log"
  cp build/tests/gpu_parity_test build/tests/cuda_smoke_test "$OUT/" 2>/dev/null || true
  bindir=build/bin
fi

# A short GPU job through `tandem run` (one trainer per GPU, two with NCCL when the machine has
# two): the example with the carried data, one pass of 200 steps.
if [[ -d "$carry/bin" ]]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  workers=1
  ((gpus >= 2)) && workers=2
  data=$PWD/$carry/fashion-mnist
  sed -e "s#train: {format: idx}#train: {format: idx, images: $data/train-images-idx3-ubyte.gz, labels: $data/train-labels-idx1-ubyte.gz}#" \
      -e "s#test: {format: idx}#test: {format: idx, images: $data/t10k-images-idx3-ubyte.gz, labels: $data/t10k-labels-idx1-ubyte.gz}#" \
      "$carry/fashion-mnist-cnn-gpu.yaml" >"$OUT/fashion-mnist-cnn-gpu.yaml"
  echo "== tandem run fashion-mnist-cnn-gpu.yaml ($workers trainer(s), $gpus GPU(s))"
  if ! LD_LIBRARY_PATH=$tandem_ld timeout 120 "$bindir/tandem" run "$OUT/fashion-mnist-cnn-gpu.yaml" \
      --workers "$workers" --run-dir "$OUT/run" --bin-dir "$PWD/$bindir" >"$OUT/tandem-run.log" 2>&1; then
    status=1
  fi
  tail -8 "$OUT/tandem-run.log"
  grep -h '^device: ' "$OUT"/run/logs/worker-*-trainer.log 2>/dev/null | sort -u
fi

echo "== bench/gpu-vs-pytorch"
bench_py=bench/gpu-vs-pytorch/run.py
[[ -f "$bench_py" ]] || bench_py=$carry/run.py
timeout 150 "$python" "$bench_py" --tandem-bench "$bindir/gpu_layers_bench" \
  --tandem-ld-library-path "$tandem_ld" --out "$OUT" \
  2>&1 | tee "$OUT/bench.log" || status=1
echo "gpu-check: done, status $status; records in $OUT"
exit $status
