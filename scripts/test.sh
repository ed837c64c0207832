#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# CI compiles and links every CUDA file: a missing toolkit fails here rather than skipping.
TANDEM_CMAKE_ARGS="-DTANDEM_CUDA=ON ${TANDEM_CMAKE_ARGS:-}" scripts/build.sh
# The real control plane of the `cluster` tests (cached under $TANDEM_CACHE after the first build).
scripts/tools/build-k8s.sh >/dev/null
scripts/tools/build-etcd.sh >/dev/null
scripts/tools/build-kwok.sh >/dev/null
# ... and its real node (tests/cluster/node.sh): kubelet, kube-proxy, CoreDNS.
scripts/tools/build-k8s.sh --node >/dev/null
scripts/tools/build-coredns.sh >/dev/null
cd build
ctest --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 1500 "$@"
