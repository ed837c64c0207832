#!/usr/bin/env bash
# The operator image, started by podman on a private network, against the real control plane of
# the cluster_up fixture (tests/cluster/): as its ServiceAccount (deploy/rbac.yaml, token only),
# non-root on a read-only root, it takes the leader Lease and admits a TrainingJob onto kwok
# nodes, and the apiserver refuses none of its calls.
# The apiserver listens on the host's loopback only; the container reaches it through a relay
# this test runs on its own network's gateway address, under the name `kubernetes` (a name the
# serving certificate carries), as a pod reaches kubernetes.default.svc.
# Ours for the engine commands and image_tag; then the cluster tests' lib.sh, whose WORK, defer
# and exit trap (and kubectl helpers) replace ours.
source "$(dirname "$0")/lib.sh"
rmdir "$WORK"
source "$TANDEM_SOURCE_DIR/tests/cluster/lib.sh"
img=$(image_tag operator)
NS=img-operator
net=tandem-images-cluster
gw=10.89.78.1
prefix=tandem-img-op

cleanup() {
  "${PODMAN[@]}" rm -f -t 2 $prefix $prefix-net >/dev/null 2>&1 || true
  "${PODMAN[@]}" network rm -f "$net" >/dev/null 2>&1 || true
}
cleanup
defer cleanup
"${PODMAN[@]}" network create --subnet 10.89.78.0/24 --gateway $gw "$net" >/dev/null ||
  fail "podman network create $net failed"
# The bridge (and so the gateway address) exists once a container is attached.
"${PODMAN[@]}" "${RUN_SAFE[@]}" -d --name $prefix-net --network "$net" --entrypoint /bin/sleep "$img" infinity >/dev/null

api=${TANDEM_APISERVER#https://}
api_port=${api##*:}
python3 - "$gw" "$api_port" "127.0.0.1" "$api_port" >"$WORK/relay.log" 2>&1 <<'PY' &
import asyncio, sys
listen_host, listen_port, to_host, to_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def handle(r, w):
    ur, uw = await asyncio.open_connection(to_host, to_port)
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)
async def main():
    server = await asyncio.start_server(handle, listen_host, listen_port)
    print("relay up", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
relay=$!
defer "kill $relay"
eventually 20 grep -q "relay up" "$WORK/relay.log"

apply_crds
new_namespace "$NS"
fake_nodes imgop 1 8
operator_kubeconfig "$WORK/operator.kubeconfig"
sed -i "s#server: \"https://127.0.0.1:$api_port\"#server: \"https://kubernetes:$api_port\"#" "$WORK/operator.kubeconfig"
grep -q "https://kubernetes:$api_port" "$WORK/operator.kubeconfig" || fail "could not point the kubeconfig at https://kubernetes:$api_port"
chmod 0644 "$WORK/operator.kubeconfig"

"${PODMAN[@]}" "${RUN_SAFE[@]}" -d --name $prefix --network "$net" --add-host "kubernetes:$gw" \
  -v "$WORK/operator.kubeconfig:/etc/tandem/kubeconfig:ro" "$img" \
  --kubeconfig /etc/tandem/kubeconfig --lease-namespace tandem-system --identity image-operator \
  --progress-interval 0 --schedule-interval 1 >/dev/null || fail "the operator container did not start"
defer "\"\${PODMAN[@]}\" logs $prefix >\"$WORK/operator.log\" 2>&1"

holder() { [[ $(kubectl -n tandem-system get lease -o jsonpath='{.items[*].spec.holderIdentity}') == *image-operator* ]]; }
eventually 120 holder || fail "the operator in the image never took the Lease: $("${PODMAN[@]}" logs $prefix 2>&1 | tail -10)"
pass "the operator image holds the leader Lease"

kubectl apply -f - >/dev/null <<J
apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {name: img-operator}
spec: {weight: 1, namespaces: [$NS]}
---
apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: from-image, namespace: $NS}
spec:
  queue: img-operator
  image: $("$TANDEM_SOURCE_DIR/images/build.sh" --tags trainer)
  workers: {count: 2}
  trainer: {resources: {requests: {cpu: "1", memory: 1Gi}}}
  pserver: {resources: {requests: {cpu: 100m, memory: 256Mi}}}
  passes: 1
  model: {inputs: [{name: image, source: features, shape: [1, 28, 28]}, {name: label, source: labels}], layers: [{name: fc1, type: fc, input: image, size: 10}, {name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}], cost: cost}
  data: {train: {format: idx}, test: {format: idx}, batchSize: 64}
J
defer "kubectl delete queue img-operator --ignore-not-found >/dev/null 2>&1"
eventually 120 bash -c "[[ \$(kubectl -n $NS get pods -l tandem.dev/job=from-image -o name | wc -l) -eq 2 ]]" ||
  fail "the operator in the image created no worker pods: $(kubectl -n $NS describe tj from-image | tail -15)"
pass "the operator image admitted the job: $(kubectl -n $NS get pods -l tandem.dev/job=from-image -o name | paste -sd' ')"
forbidden_calls || fail "the apiserver refused calls of the operator image"
pass "no call of the operator image was forbidden"
