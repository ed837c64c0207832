#!/usr/bin/env bash
# Builds the real helm 3 from the Go module proxy, pinned, and caches it outside git:
#   ${TANDEM_CACHE:-/var/cache/tandem}/helm-<version>/bin/helm
# Prints the binary's path on stdout. A second run finds the cached binary and returns at once.
#
# Why the -X flags: helm 3 reads the Kubernetes version it assumes for `helm template` and
# `helm lint` (.Capabilities.KubeVersion) from link-time variables whose defaults say 1.20
# (pkg/chartutil/capabilities.go, pkg/lint/rules). Upstream's Makefile sets them to the
# client-go minor it builds against; `go install` alone does not, so we set them here.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
# The Kubernetes minor the chart targets; matches the control plane the cluster tests run.
HELM_K8S_MAJOR="${HELM_K8S_MAJOR:-1}"
HELM_K8S_MINOR="${HELM_K8S_MINOR:-36}"

cache="${TANDEM_CACHE:-/var/cache/tandem}/helm-${HELM_VERSION}-k8s${HELM_K8S_MAJOR}.${HELM_K8S_MINOR}"
bin="${cache}/bin/helm"
if [[ -x "${bin}" ]] && "${bin}" version --short >/dev/null 2>&1; then
  echo "${bin}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do [[ -x "$g" ]] && PATH="$(dirname "$g"):$PATH"; done
fi
command -v go >/dev/null 2>&1 || { echo "build-helm.sh: no 'go' on PATH (install Go >= 1.26)" >&2; exit 1; }

mkdir -p "${cache}"
tmp="$(mktemp -d "${cache}/build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
pkg=helm.sh/helm/v3
ldflags="-s -w -X ${pkg}/internal/version.version=${HELM_VERSION}"
ldflags+=" -X ${pkg}/internal/version.gitTreeState=clean"
ldflags+=" -X ${pkg}/pkg/chartutil.k8sVersionMajor=${HELM_K8S_MAJOR}"
ldflags+=" -X ${pkg}/pkg/chartutil.k8sVersionMinor=${HELM_K8S_MINOR}"
ldflags+=" -X ${pkg}/pkg/lint/rules.k8sVersionMajor=${HELM_K8S_MAJOR}"
ldflags+=" -X ${pkg}/pkg/lint/rules.k8sVersionMinor=${HELM_K8S_MINOR}"
echo "build-helm.sh: go install ${pkg}/cmd/helm@${HELM_VERSION} (first time: a few minutes)" >&2
GOBIN="${tmp}" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false} -p=${TANDEM_JOBS:-2}" \
  go install -trimpath -ldflags "${ldflags}" "${pkg}/cmd/helm@${HELM_VERSION}" >&2
mkdir -p "${cache}/bin"
mv "${tmp}/helm" "${bin}.new" && mv "${bin}.new" "${bin}"
"${bin}" version --short >&2
echo "${bin}"
