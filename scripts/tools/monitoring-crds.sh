#!/usr/bin/env bash
# Prints the folder of prometheus-operator's CustomResourceDefinitions (ServiceMonitor, PodMonitor,
# PrometheusRule, ...: example/prometheus-operator-crd) at the pinned version, taken from the
# github.com/prometheus-operator/prometheus-operator Go module (Go module proxy, ~4 MB zip, kept in
# the Go module cache). The chart's checks validate our optional monitoring objects against these
# schemas offline and apply them to the real control plane so that its dry run checks them too.
set -euo pipefail
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
if ! command -v go >/dev/null 2>&1; then
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do [[ -x "$g" ]] && PATH="$(dirname "$g"):$PATH"; done
fi
command -v go >/dev/null 2>&1 || { echo "monitoring-crds.sh: no 'go' on PATH" >&2; exit 1; }
mod="github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}"
dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
crds="$dir/example/prometheus-operator-crd"
for kind in servicemonitors podmonitors prometheusrules; do
  [[ -f "$crds/monitoring.coreos.com_$kind.yaml" ]] || { echo "monitoring-crds.sh: $mod has no $crds/monitoring.coreos.com_$kind.yaml" >&2; exit 1; }
done
echo "$crds"
