#!/usr/bin/env bash
# Prints the folder of Kubernetes' OpenAPI v3 documents (api/openapi-spec/v3) for the version the
# chart targets, from the k8s.io/kubernetes module (Go module proxy, ~20 MB zip, kept in the Go
# module cache; the real control plane's build downloads the same module).
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
if ! command -v go >/dev/null 2>&1; then
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do [[ -x "$g" ]] && PATH="$(dirname "$g"):$PATH"; done
fi
command -v go >/dev/null 2>&1 || { echo "k8s-openapi.sh: no 'go' on PATH" >&2; exit 1; }
dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -n "$dir" && -d "$dir/api/openapi-spec/v3" ]] || { echo "k8s-openapi.sh: k8s.io/kubernetes@${K8S_VERSION} has no api/openapi-spec/v3" >&2; exit 1; }
echo "$dir/api/openapi-spec/v3"
