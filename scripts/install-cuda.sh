#!/usr/bin/env bash
# Makes a CUDA 13 toolchain (nvcc, cudart, cuBLAS, cuDNN, NCCL headers and libraries) available
# to the build, without a GPU and without a preinstalled toolkit, and prints its root:
#   root=$(scripts/install-cuda.sh)      # then: cmake -DTANDEM_CUDA_ROOT=$root ...
#
# 1. A toolkit already on the machine (CUDA_HOME, /usr/local/cuda, nvcc on PATH) is used as is:
#    the device machine has one and no registry.
# 2. Otherwise the pinned CUDA wheels from PyPI are pip-installed into the project's own venv under
#    ${TANDEM_CACHE:-/var/cache/tandem}/cuda-<version>/, keyed by the pins, so a second run (and
#    every clean clone on this machine) costs nothing. The wheels lay each library out as
#    site-packages/nvidia/<lib>/{bin,include,lib}; this script merges them into one toolkit-shaped
#    tree (symlinks) with the unversioned .so names the linker wants, and that tree is the root.
#
# Idempotent. Progress goes to stderr; stdout is only the root.
set -euo pipefail
# shellcheck source=lib/pinned-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pinned-venv.sh"

# The pins, one place. Bumping any of them makes a new cache directory.
# CUDA 13.0 as on the GPU machines (nvcc 13.0, driver 580, PyTorch 2.11+cu130): binaries built
# here run there against its own libraries, and no newer-header API slips in.
PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.0.2.14
  nvidia-cudnn-cu13==9.13.1.26
  nvidia-nccl-cu13==2.27.7
)

log() { echo "install-cuda: $*" >&2; }

# 1. An installed toolkit with cuBLAS and cuDNN headers wins.
for cand in "${CUDA_HOME:-}" /usr/local/cuda "$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /none/bin/nvcc)")")"; do
  if [[ -n "$cand" && -x "$cand/bin/nvcc" && -f "$cand/include/cublas_v2.h" ]]; then
    log "using the CUDA toolkit at $cand"
    echo "$cand"
    exit 0
  fi
done

key=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)
cache=${TANDEM_CACHE:-/var/cache/tandem}
dir="$cache/cuda-13.0-$key"
root="$dir/toolkit"
if [[ -f "$dir/.complete" ]]; then
  echo "$root"
  exit 0
fi

# Builds in several checkouts may start at once: one installs, the others wait and reuse it.
if pinned_venv_lock "$dir"; then
  echo "$root"
  exit 0
fi
start=$(date +%s)
log "pip-installing ${#PINS[@]} pinned CUDA wheels into $dir/venv (first run only)"
pinned_venv_pip "$dir" "${PINS[@]}"

site=$("$dir/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
nv="$site/nvidia"
[[ -d "$nv" ]] || { log "no $nv after pip install"; exit 1; }

# One toolkit-shaped tree of symlinks. nvcc finds cicc, ptxas, crt/ and the CCCL headers relative
# to the bin/ it was started from (../lib, ../include/cccl, ../nvvm/bin), so the tree mirrors a
# toolkit: bin/, include/, lib/ (lib64 -> lib), nvvm/.
rm -rf "$root.tmp"
mkdir -p "$root.tmp/bin" "$root.tmp/include" "$root.tmp/lib" "$root.tmp/nvvm"
ln -s lib "$root.tmp/lib64"
for pkg in "$nv"/*/; do
  pkg=${pkg%/}
  for sub in include lib bin; do
    [[ -d "$pkg/$sub" ]] || continue
    dest=$root.tmp/$sub
    # The tree as links; a name two wheels share (a CCCL header the nvcc wheel also ships) keeps
    # the first.
    cp -rsn "$pkg/$sub/." "$dest/"
  done
  # nvvm/ (cicc, libdevice) sits beside bin/ in a toolkit.
  if [[ -d "$pkg/nvvm" ]]; then
    cp -rsn "$pkg/nvvm/." "$root.tmp/nvvm/"
  fi
done
# The linker wants libX.so; the wheels ship only libX.so.<major>.
for f in "$root.tmp"/lib/lib*.so.*; do
  [[ -e "$f" ]] || continue
  base=${f%%.so.*}.so
  [[ -e "$base" ]] || ln -s "$(readlink -f "$f")" "$base"
done
[[ -x "$root.tmp/bin/nvcc" ]] || { log "the nvcc wheel has no bin/nvcc"; exit 1; }
rm -rf "$root"
mv "$root.tmp" "$root"
touch "$dir/.complete"
log "toolkit ready at $root in $(($(date +%s) - start)) s ($(du -sh "$dir/venv" | cut -f1) of wheels)"
echo "$root"
