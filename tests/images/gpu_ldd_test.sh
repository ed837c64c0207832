#!/usr/bin/env bash
# Inside the GPU image, every shared library its binaries load resolves (ldd), the CUDA libraries
# resolve to the copies shipped in the image, and the package list names the CUDA wheels they
# came from. Only the NVIDIA driver's own libraries (libcuda.so.1, libnvidia-ml.so.1) may be
# missing: the container toolkit mounts them from the node at run time.
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
# The binaries were built with the CUDA backend: the trainer links the CUDA runtime, from the
# image's own copy of the wheel (cuBLAS, cuDNN and NCCL too, once the trainer links them).
for lib in libcudart.so; do
  line=$(sed -n '/^== \/usr\/local\/bin\/tandem-trainer/,/^==/p' "$WORK/ldd.txt" | grep "$lib" | head -1)
  [[ -n $line ]] || fail "tandem-trainer in $img does not link $lib: it was built without CUDA"
  [[ $line == *"/usr/local/lib/tandem/"* ]] || fail "$lib resolves outside the image's CUDA libraries: $line"
done
for wheel in nvidia-cuda-runtime; do
  grep -q "^pypi $wheel " "$WORK/ldd.txt" || fail "$img's package list does not name the wheel $wheel"
done
pass "$img: every library resolved; CUDA: $(grep '^pypi ' "$WORK/ldd.txt" | cut -d' ' -f2,3 | paste -sd, )"
