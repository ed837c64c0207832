#!/usr/bin/env bash
# A measurement, not a test (no ctest entry): how long the real node's kubelet takes to rewrite a
# mounted ConfigMap after it changes, left alone and when the pod is touched (an annotation)
# right after the change. docs/elastic.md ("How long a resize takes to reach the trainers").
#   tests/cluster/configmap_refresh_probe.sh <node state dir>     (node.sh up; as root)
# Reads the volume's file on the host (<state>/node/kubelet/pods/<uid>/volumes/...), so the pod
# needs no shell: it runs tandem-serve on a missing folder, which just waits.
set -euo pipefail
S=${1:?usage: configmap_refresh_probe.sh <node state dir>}
# shellcheck disable=SC1091
source "$S/env.sh"
ns=tandem-cm-probe
kubectl delete ns $ns --ignore-not-found --wait=true >/dev/null
kubectl create ns $ns >/dev/null
trap 'kubectl delete ns $ns --wait=false >/dev/null 2>&1' EXIT
for _ in $(seq 60); do kubectl -n $ns get sa default >/dev/null 2>&1 && break; sleep 1; done
kubectl -n $ns create configmap cfg --from-literal=a=1 >/dev/null
kubectl apply -f - >/dev/null <<P
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: $ns}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  automountServiceAccountToken: false
  containers:
  - name: c
    image: localhost/tandem/tandem-trainer:0.1.0
    imagePullPolicy: Never
    command: [tandem-serve, --model-dir, /nonexistent, --port, "8080", --grpc-port, "-1"]
    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
  volumes: [{name: cfg, configMap: {name: cfg}}]
P
kubectl -n $ns wait --for=condition=Ready pod/p --timeout=120s >/dev/null
uid=$(kubectl -n $ns get pod p -o jsonpath='{.metadata.uid}')
f=$S/node/kubelet/pods/$uid/volumes/kubernetes.io~configmap/cfg/a
echo "kubelet: $(grep syncFrequency "$S/node/kubelet.yaml" || echo "syncFrequency: default (1m)")"
wait_for() {  # wait_for <value> <start time>: seconds until the file holds it
  for _ in $(seq 1800); do
    [[ "$(cat "$f" 2>/dev/null)" == "$1" ]] && { python3 -c "import time; print(f'{time.time()-$2:.1f}')"; return; }
    sleep 0.1
  done
  echo "timeout (180 s)"
}
sleep 15
for v in 2 3; do
  kubectl -n $ns patch configmap cfg -p "{\"data\":{\"a\":\"$v\"}}" >/dev/null; t0=$(date +%s.%N)
  echo "change $v, pod left alone: $(wait_for $v "$t0") s"
done
for v in 4 5 6; do
  kubectl -n $ns patch configmap cfg -p "{\"data\":{\"a\":\"$v\"}}" >/dev/null; t0=$(date +%s.%N)
  kubectl -n $ns annotate pod p --overwrite "tandem.dev/probe=$v" >/dev/null
  echo "change $v, pod annotated right after: $(wait_for $v "$t0") s"
done
