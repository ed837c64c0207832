#!/usr/bin/env bash
# A real Kubernetes control plane for the `cluster` tests, started as envtest does, but with the
# controller manager (garbage collector, ServiceAccounts, namespace deletion) and kwok (fake nodes):
#   etcd -> kube-apiserver (TLS, x509 + ServiceAccount tokens, --authorization-mode=Node,RBAC)
#        -> kube-controller-manager, kwok
# all on free loopback ports. Writes into <state-dir>:
#   admin.kubeconfig   system:masters client certificate
#   env.sh             exports KUBECONFIG, PATH (kubectl, kwok, etcd), TANDEM_CLUSTER_STATE, TANDEM_KWOK_STAGES
#   pki/ logs/ pids/ etcd/
# Usage: tests/cluster/controlplane.sh up|down|restart-apiserver <state-dir>
#   restart-apiserver: stops kube-apiserver (SIGTERM) and starts it again with the same flags, for
#   tests of watch interruptions; returns when /readyz is ok again.
# The binaries come from scripts/tools/build-{k8s,etcd,kwok}.sh (cached under $TANDEM_CACHE); a
# missing binary is an error, never a skip.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmd="${1:-}"; state="${2:-}"
[[ -n "$cmd" && -n "$state" ]] || { echo "usage: $0 up|down|restart-apiserver <state-dir>" >&2; exit 2; }
mkdir -p "$state"; state="$(cd "$state" && pwd)"

stop_all() {
  local f pid
  for f in "$state"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
  done
  for f in "$state"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    pid="$(cat "$f")"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

# start, ready: logs in logs/<name>.log, pids in pids/<name>.pid
PROC_WHO=controlplane PROC_LOGS="$state/logs/" PROC_PIDS="$state/pids"
# shellcheck source=tests/cluster/procs.sh
source "$here/procs.sh"
if [[ "$cmd" == restart-apiserver ]]; then
  # shellcheck disable=SC1091
  source "$state/env.sh"
  pid="$(cat "$state/pids/kube-apiserver.pid")"
  kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  mapfile -t args <"$state/apiserver.args"
  start kube-apiserver "$(dirname "$(command -v kubectl)")/kube-apiserver" "${args[@]}"
  ready kube-apiserver 180 kubectl get --raw /readyz
  echo "controlplane: kube-apiserver restarted"
  exit 0
fi
if [[ "$cmd" == down ]]; then
  stop_all
  rm -rf "$state/etcd"
  echo "controlplane: down ($state)"
  exit 0
fi
[[ "$cmd" == up ]] || { echo "usage: $0 up|down <state-dir>" >&2; exit 2; }

# Binaries: only look them up here (scripts/test.sh builds them before ctest); the tool scripts
# return at once when their cache is in place.
bins=()
for s in build-k8s build-etcd build-kwok; do
  if ! d="$(TANDEM_TOOLS_NO_BUILD=1 "$root/scripts/tools/$s.sh" | tail -n 1)"; then
    echo "controlplane: $s.sh has no cached binaries; run scripts/tools/$s.sh (scripts/test.sh does)" >&2
    exit 1
  fi
  bins+=("$d")
done
K8S_BIN="${bins[0]}"; ETCD_BIN="${bins[1]}"; KWOK_BIN="${bins[2]}"
KWOK_STAGES="$(dirname "$KWOK_BIN")/stages"
for b in "$K8S_BIN/kube-apiserver" "$K8S_BIN/kube-controller-manager" "$K8S_BIN/kubectl" "$ETCD_BIN/etcd" "$KWOK_BIN/kwok"; do
  [[ -x "$b" ]] || { echo "controlplane: missing $b" >&2; exit 1; }
done

stop_all
rm -rf "$state/etcd" "$state/pki"
rm -rf "$state/logs"; mkdir -p "$state/logs" "$state/pids" "$state/etcd"
# The one real node (tests/cluster/node.sh, started only by the node tests): its name, its pods'
# subnet on the bridge node.sh creates, and the bridge's own address, which is the node's address
# and the address kube-apiserver advertises: pods reach the API through kube-proxy's `kubernetes`
# Service there (node.sh relays it to the loopback port). Nothing listens on it without a node.
NODE_NAME=tandem-node NODE_POD_CIDR=10.244.77.0/24 NODE_IP=10.244.77.1
"$here/pki.sh" "$state/pki" "$NODE_NAME" "$NODE_IP"
pki="$state/pki"

read -r P_ETCD P_PEER P_API P_KCM P_KWOK < <("$root/scripts/tools/free-ports.py" 5)


kubeconfig() {  # kubeconfig <file> <user> <cert> <key>
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tandem-test
  cluster:
    server: https://127.0.0.1:$P_API
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$3")
    client-key-data: $(base64 -w0 "$4")
contexts:
- name: tandem-test
  context: {cluster: tandem-test, user: $2, namespace: default}
current-context: tandem-test
KC
}
kubeconfig "$state/admin.kubeconfig" tandem-admin "$pki/admin.crt" "$pki/admin.key"
kubeconfig "$pki/kcm.kubeconfig" kube-controller-manager "$pki/kcm.crt" "$pki/kcm.key"
kubeconfig "$pki/kwok.kubeconfig" kwok-controller "$pki/kwok.crt" "$pki/kwok.key"
for c in kubelet kube-proxy scheduler coredns; do
  kubeconfig "$pki/$c.kubeconfig" "$c" "$pki/$c.crt" "$pki/$c.key"
done

start etcd "$ETCD_BIN/etcd" --name=tandem --data-dir="$state/etcd" \
  --listen-client-urls="http://127.0.0.1:$P_ETCD" --advertise-client-urls="http://127.0.0.1:$P_ETCD" \
  --listen-peer-urls="http://127.0.0.1:$P_PEER" --initial-advertise-peer-urls="http://127.0.0.1:$P_PEER" \
  --initial-cluster="tandem=http://127.0.0.1:$P_PEER" --unsafe-no-fsync=true --log-level=warn

# Audit: every request of the operator's ServiceAccount (and of anyone refused), at Metadata
# level, so tests can prove the operator never made a call RBAC forbids (responseStatus.code 403).
cat >"$state/audit-policy.yaml" <<'AUDIT'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:tandem-system"]
- level: None
AUDIT
api_args=(
  --etcd-servers="http://127.0.0.1:$P_ETCD"
  --bind-address=127.0.0.1 --advertise-address="$NODE_IP" --secure-port="$P_API"
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"
  --client-ca-file="$pki/ca.crt"
  --authorization-mode=Node,RBAC
  --enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt"
  --kubelet-client-key="$pki/apiserver-kubelet-client.key"
  --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key"
  --api-audiences=https://kubernetes.default.svc.cluster.local
  --service-cluster-ip-range=10.96.0.0/16
  --allow-privileged=true --profiling=false --event-ttl=1h
  --audit-policy-file="$state/audit-policy.yaml" --audit-log-path="$state/logs/audit.log"
  --audit-log-maxsize=200 --audit-log-maxbackup=1
  ${TANDEM_APISERVER_EXTRA_ARGS:-}
)
printf '%s\n' "${api_args[@]}" >"$state/apiserver.args"
start kube-apiserver "$K8S_BIN/kube-apiserver" "${api_args[@]}"

cat >"$state/env.sh" <<ENV
# Generated by tests/cluster/controlplane.sh: source it to talk to the test control plane.
export KUBECONFIG="$state/admin.kubeconfig"
export PATH="$K8S_BIN:$KWOK_BIN:$ETCD_BIN:\$PATH"
export TANDEM_CLUSTER_STATE="$state"
export TANDEM_KWOK_STAGES="$KWOK_STAGES"
export TANDEM_APISERVER="https://127.0.0.1:$P_API"
export TANDEM_NODE_NAME="$NODE_NAME" TANDEM_NODE_POD_CIDR="$NODE_POD_CIDR" TANDEM_NODE_IP="$NODE_IP"
ENV
# shellcheck disable=SC1091
source "$state/env.sh"

ready kube-apiserver 180 kubectl get --raw /readyz

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$pki/kcm.kubeconfig" \
  --authentication-kubeconfig="$pki/kcm.kubeconfig" --authorization-kubeconfig="$pki/kcm.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$P_KCM" \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=true --leader-elect=false \
  --controllers='*,-bootstrapsigner,-tokencleaner,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller' \
  --kube-api-qps=${TANDEM_KCM_QPS:-200} --kube-api-burst=${TANDEM_KCM_BURST:-400}

# kwok: fake nodes (those annotated kwok.x-k8s.io/node=fake) and their pods' lifecycle. Pod and
# node addresses are loopback ones: nothing may ever send traffic to an address outside this
# machine (the Endpoints controllers refuse loopback endpoints and say so in their log; no test
# needs Endpoints).
{
  echo "apiVersion: config.kwok.x-k8s.io/v1alpha1"
  echo "kind: KwokConfiguration"
  echo "options:"
  echo "  podPlayStageParallelism: 8"
  echo "  nodePlayStageParallelism: 4"
  echo "  nodeLeaseParallelism: 4"
} >"$state/kwok.yaml"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  [[ -f "$KWOK_STAGES/$f" ]] || { echo "controlplane: kwok stage $KWOK_STAGES/$f is missing" >&2; exit 1; }
  { echo "---"; cat "$KWOK_STAGES/$f"; } >>"$state/kwok.yaml"
done
start kwok "$KWOK_BIN/kwok" --kubeconfig="$pki/kwok.kubeconfig" --config="$state/kwok.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=127.128.0.0/16 --node-ip=127.127.0.1 --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$P_KWOK"

# Ready when the controller manager has created the default ServiceAccount (pods need it).
ready kube-controller-manager 180 kubectl get serviceaccount default -n default
echo "controlplane: up at https://127.0.0.1:$P_API ($state)"
