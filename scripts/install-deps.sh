#!/usr/bin/env bash
# Installs Tandem's build, test and benchmark dependencies from Debian's archive.
# Idempotent: only packages that are missing are installed, non-interactively.
# Usage: scripts/install-deps.sh               (as root, or with sudo available)
#        scripts/install-deps.sh --build-only  (only what compiles the binaries: the images' build stage)
set -euo pipefail

BUILD_PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates ccache
  # RPC and serialization
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # Kubernetes client, manifests
  libcpprest-dev nlohmann-json3-dev libyaml-cpp-dev
  # foundation
  libabsl-dev libspdlog-dev libcli11-dev zlib1g-dev libssl-dev
  # compute
  libdnnl-dev libopenblas-dev ocl-icd-opencl-dev opencl-headers
)
PACKAGES=(
  "${BUILD_PACKAGES[@]}"
  # container images (images/): debootstrap for the base, buildah to build, podman to run
  debootstrap buildah podman runc netavark aardvark-dns
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev prometheus
  # chart, dashboard and report checks: PyYAML for the test scripts, headless Chromium for report.html
  python3-yaml chromium
  # hardening: libFuzzer and the sanitizer runtimes (scripts/fuzz.sh), netns tests (iproute2)
  clang-14 libclang-rt-14-dev libfuzzer-14-dev libomp-14-dev iproute2 iptables
  # data
  dataset-fashion-mnist
  # the word list the sequence-to-sequence examples transliterate (scripts/tools/gen-piglatin.py)
  wamerican
  # peers for side-by-side benchmarks
  python3 python3-torch libopenmpi-dev openmpi-bin
  # the real control plane of tests/cluster (certificates) and its real node (tests/cluster/node.sh:
  # a private containerd with runc, the CNI plugins, kube-proxy's iptables and conntrack, a relay)
  openssl containerd containernetworking-plugins conntrack socat
  # the venv scripts/install-cuda.sh pip-installs the CUDA wheels into
  python3-venv
)

if [[ ${1:-} == --build-only ]]; then PACKAGES=("${BUILD_PACKAGES[@]}"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq; then
  echo "install-deps: apt-get update failed; check the machine's Debian sources" >&2
  exit 1
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/tandem-apt.log 2>&1; then
  echo "install-deps: apt-get install failed; last lines of /tmp/tandem-apt.log:" >&2
  tail -20 /tmp/tandem-apt.log >&2
  for p in "${missing[@]}"; do
    apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: (none)' &&
      echo "install-deps: package '$p' cannot be had from the configured archive" >&2
  done
  exit 1
fi
echo "install-deps: done"
