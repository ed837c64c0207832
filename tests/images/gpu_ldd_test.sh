#!/usr/bin/env bash
# Inside the GPU image, every shared library its binaries load resolves (ldd), it was built with the
# CUDA backend on, the CUDA libraries it links resolve to the copies shipped in the image, and the
# package list names the CUDA wheels they came from. Only the NVIDIA driver's own libraries
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
linked=$(grep -E '^\s*lib(cudart|cublas|cublasLt|cudnn|nccl)[^ ]* => ' "$WORK/ldd.txt" | awk '{print $1 " " $3}' | sort -u || true)
while read -r lib path; do
  [[ -z $lib ]] && continue
  [[ $path == /usr/local/lib/tandem/* ]] || fail "$lib resolves outside the image's CUDA libraries: $path"
done <<<"$linked"
grep -q '^pypi ' "$WORK/ldd.txt" || [[ -z $linked ]] || fail "$img ships CUDA libraries but its package list names no wheel"
trainer_cuda=$(sed -n '/^== \/usr\/local\/bin\/tandem-trainer/,/^== [^/]/p' "$WORK/ldd.txt" | grep -oE 'lib(cudart|cublas|cudnn|nccl)[^ ]*' | sort -u | paste -sd, || true)
echo "tandem-trainer links: ${trainer_cuda:-no CUDA library (the trainer does not link the CUDA backend yet)}"
pass "$img: every library resolved; $(echo "$info" | tail -1); wheels shipped: $(grep '^pypi ' "$WORK/ldd.txt" | cut -d' ' -f2,3 | paste -sd, )"
