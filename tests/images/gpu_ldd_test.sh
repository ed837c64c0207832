#!/usr/bin/env bash
# Inside the GPU image, every shared library its binaries and the CUDA plugin load resolves (ldd),
# it was built with the CUDA backend on, tandem-trainer itself links no CUDA library, the plugin
# (/usr/local/lib/tandem/libtandem-cuda.so) links cudart, cuBLAS, cuBLASLt, cuDNN and NCCL and each
# resolves to the image's own copy, cuDNN's dlopen'd engines are shipped, and the package list
# names the CUDA wheels they came from. Any of them missing fails the test. Only the NVIDIA driver's own libraries
# (libcuda.so.1, libnvidia-ml.so.1) may be missing: the container toolkit mounts them at run time.
source "$(dirname "$0")/lib.sh"
img=$(image_tag trainer-gpu)
"${PODMAN[@]}" "${RUN_SAFE[@]}" --rm --network none --entrypoint /bin/sh "$img" -c '
  set -e
  for b in /usr/local/bin/tandem-trainer /usr/local/bin/tandem-pserver /usr/local/lib/tandem/*.so*; do
    [ -e "$b" ] || continue
    echo "== $b"
    ldd "$b"
  done
  echo "== packages"
  cat /usr/share/tandem/packages.txt
' >"$WORK/ldd.txt" 2>&1 || fail "ldd inside $img failed: $(tail -20 "$WORK/ldd.txt")"
missing=$(grep -E 'not found|version .* not found' "$WORK/ldd.txt" | grep -vE '^\s*(libcuda\.so\.1|libnvidia-ml\.so\.1) => not found' || true)
[[ -z $missing ]] || fail "unresolved in $img: $missing"
grep -q '^== /usr/local/bin/tandem-trainer' "$WORK/ldd.txt" || fail "$img has no tandem-trainer"
# The binaries were built with the CUDA backend on (the configure line the build recorded), and
# every CUDA library they link resolves to the image's own copy, named in the package list.
info=$("${PODMAN[@]}" run "${PODMAN_RUN_LIMITS[@]}" --rm --network none --entrypoint /bin/cat "$img" /usr/share/tandem/build-info) ||
  fail "$img has no /usr/share/tandem/build-info"
[[ $info == *"CUDA backend ON"* ]] || fail "$img was not built with the CUDA backend: $info"
# The trainer is the CPU image's: it links no CUDA library and opens the plugin for a GPU job only.
section() {  # the ldd lines of one file's section of ldd.txt
  awk -v h="== $1" '$0 == h {on = 1; next} /^== / {on = 0} on' "$WORK/ldd.txt"
}
trainer_cuda=$(section /usr/local/bin/tandem-trainer | grep -oE 'lib(cudart|cublas|cudnn|nccl)[^ ]*' | sort -u | paste -sd, || true)
[[ -z $trainer_cuda ]] || fail "tandem-trainer links CUDA libraries ($trainer_cuda): it must open them through libtandem-cuda.so only"
# The CUDA plugin is there, and every CUDA library it links resolves to the image's own copy.
plugin=/usr/local/lib/tandem/libtandem-cuda.so
grep -q "^== $plugin\$" "$WORK/ldd.txt" || fail "$img has no $plugin (the GPU trainer's CUDA plugin)"
plugin_ldd=$(section "$plugin")
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 libnccl.so.2; do
  path=$(echo "$plugin_ldd" | awk -v l="$lib" '$1 == l {print $3}' | head -1)
  [[ -n $path ]] || fail "$plugin does not link $lib"
  [[ $path == /usr/local/lib/tandem/* ]] || fail "$lib resolves outside the image's CUDA libraries: $path"
done
# cuDNN opens its engines with dlopen (ldd cannot see them): every one must be shipped.
for lib in libcudnn_adv.so.9 libcudnn_cnn.so.9 libcudnn_engines_precompiled.so.9 \
    libcudnn_engines_runtime_compiled.so.9 libcudnn_graph.so.9 libcudnn_heuristic.so.9 libcudnn_ops.so.9; do
  grep -q "^== /usr/local/lib/tandem/$lib\$" "$WORK/ldd.txt" || fail "$img lacks cuDNN's engine library $lib"
done
# Each wheel the libraries came from is named in the package list.
for wheel in nvidia-cuda-runtime nvidia-cublas nvidia-cudnn-cu13 nvidia-nccl-cu13; do
  grep -q "^pypi $wheel " "$WORK/ldd.txt" || fail "$img's package list does not name the wheel $wheel"
done
# The trainer opens the plugin inside the image and CUDA itself answers (this container has no
# GPU): a GPU job exits 2 naming the field and CUDA's reason, so the plugin and the CUDA runtime
# loaded from the image's own copies at run time, not only under ldd.
run_out=$("${PODMAN[@]}" "${RUN_SAFE[@]}" --rm --network none \
  -v "$TANDEM_SOURCE_DIR/examples/fashion-mnist-cnn-gpu.yaml:/job.yaml:ro" \
  -v /usr/share/datasets/fashion-mnist:/usr/share/datasets/fashion-mnist:ro "$img" \
  tandem-trainer --check-device /job.yaml 2>&1) && fail "--check-device found a GPU in a container given none: $run_out"
[[ $run_out == *"spec.trainer.resources.requests[nvidia.com/gpu] = 1"*"cudaGetDeviceCount: "* ]] ||
  fail "the GPU job did not fail on CUDA's own answer inside $img: $run_out"
[[ $run_out != *"cannot load the CUDA plugin"* ]] || fail "the plugin does not load inside $img: $run_out"
echo "in $img without a GPU: $run_out"
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$img")
echo "$img: $((size / 1000000)) MB; the plugin links: $(echo "$plugin_ldd" | grep -oE '^\s*lib(cudart|cublas|cublasLt|cudnn|nccl)[^ ]*' | tr -d ' \t' | sort -u | paste -sd, )"
pass "$img: every library resolved, tandem-trainer links no CUDA, the plugin's CUDA libraries and cuDNN's engines are the image's own; $(echo "$info" | tail -1); wheels shipped: $(grep '^pypi ' "$WORK/ldd.txt" | cut -d' ' -f2,3 | paste -sd, )"
