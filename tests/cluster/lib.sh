# Shared helpers for the `cluster` tests (bash). Source it first:
#   source "$(dirname "$0")/lib.sh"
# It joins the control plane of the cluster_up fixture (env.sh), fails (never skips) when that is
# missing, and gives: fail, eventually, new_namespace, apply_crds, operator helpers.
set -euo pipefail
: "${TANDEM_SOURCE_DIR:?}" "${TANDEM_CLUSTER_STATE:?}"
SRC="$TANDEM_SOURCE_DIR"
if [[ ! -f "$TANDEM_CLUSTER_STATE/env.sh" ]]; then
  echo "FAIL: no control plane at $TANDEM_CLUSTER_STATE (the cluster_up fixture did not run or failed)" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$TANDEM_CLUSTER_STATE/env.sh"
command -v kubectl >/dev/null || { echo "FAIL: kubectl is not on PATH" >&2; exit 1; }
TEST_NAME="$(basename "$0" .sh)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tandem-$TEST_NAME.XXXXXX")"
_cleanups=()
on_exit() {
  local rc=$? i
  for ((i=${#_cleanups[@]}-1; i>=0; i--)); do eval "${_cleanups[$i]}" || true; done
  if (( rc != 0 )); then echo "FAILED ($TEST_NAME), work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap on_exit EXIT
defer() { _cleanups+=("$*"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# eventually <seconds> <cmd...>: retries until cmd succeeds; fails with the last output.
eventually() {
  local secs="$1"; shift
  local deadline=$((SECONDS + secs)) out
  while true; do
    if out="$("$@" 2>&1)"; then return 0; fi
    if (( SECONDS > deadline )); then
      echo "eventually: '$*' did not succeed in ${secs}s; last output:" >&2
      echo "$out" | tail -n 20 >&2
      return 1
    fi
    sleep 0.5
  done
}

# new_namespace <name>: a fresh namespace for this test, deleted (cascading) at exit.
new_namespace() {
  kubectl delete namespace "$1" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "$1" >/dev/null
  defer "kubectl delete namespace $1 --wait=false >/dev/null 2>&1"
  # The controller manager creates the default ServiceAccount; pods need it.
  eventually 60 kubectl -n "$1" get serviceaccount default
}

apply_crds() {
  kubectl apply --server-side --force-conflicts -f "$SRC/crds/" >/dev/null
  # (kubectl wait fails outright while a new CRD has no conditions yet.)
  eventually 60 kubectl wait --for=condition=Established --timeout=10s crd/trainingjobs.tandem.dev crd/queues.tandem.dev \
    crd/sweeps.tandem.dev
}

# jsonpath <kubectl get args...> -- prints one jsonpath value
jp() { kubectl get "$@"; }

# --- fake nodes (kwok) -----------------------------------------------------------------------
# fake_nodes <prefix> <count> [gpus]: Nodes that the fixture's kwok keeps Ready (annotation
# kwok.x-k8s.io/node=fake), in one server-side apply. Deleted at exit.
fake_nodes() {
  local prefix="$1" n="$2" gpus="${3:-8}" i
  for ((i=0; i<n; i++)); do
    cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: $prefix-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: $prefix-$i, tandem.dev/test: $prefix}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "$gpus"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "$gpus"}
NODE
  done >"$WORK/nodes-$prefix.yaml"
  kubectl apply --server-side -f "$WORK/nodes-$prefix.yaml" >/dev/null
  defer "kubectl delete nodes -l tandem.dev/test=$prefix --wait=false >/dev/null 2>&1"
  eventually 120 bash -c "[[ \$(kubectl get nodes -l tandem.dev/test=$prefix -o jsonpath='{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}' | grep -c True) -ge $n ]]"
}

# --- queues -----------------------------------------------------------------------------------
# owner_and_borrower_queues <prefix> <namespace> <gpus> <cpu> <memory>: Queue <prefix>-owner,
# guaranteed that much and reclaiming what others borrowed of it, and Queue <prefix>-borrower
# with no guarantee, both for <namespace>. Deleted at exit.
owner_and_borrower_queues() {
  local prefix="$1" ns="$2" gpus="$3" cpu="$4" mem="$5"
  kubectl apply -f - >/dev/null <<Q
apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {name: $prefix-owner}
spec:
  weight: 1
  guaranteed: {nvidia.com/gpu: $gpus, cpu: "$cpu", memory: $mem}
  namespaces: [$ns]
  preemption: {reclaimBorrowed: true, withinQueue: Never}
---
apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {name: $prefix-borrower}
spec:
  weight: 1
  namespaces: [$ns]
Q
  defer "kubectl delete queue $prefix-owner $prefix-borrower --ignore-not-found >/dev/null 2>&1"
}

# --- the operator as its ServiceAccount -------------------------------------------------------
OPERATOR_SA="system:serviceaccount:tandem-system:tandem-operator"
TEST_START="$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)"  # same format as the audit log's stageTimestamp

# operator_kubeconfig <file>: deploy/rbac.yaml applied, a token for the operator's ServiceAccount
# from the TokenRequest API, and a kubeconfig that uses only that token (no client certificate).
operator_kubeconfig() {
  kubectl apply --server-side --force-conflicts -f "$SRC/deploy/rbac.yaml" >/dev/null
  local token ca server
  token="$(kubectl create token tandem-operator -n tandem-system --duration=2h)"
  ca="$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  server="$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')"
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: tandem-operator, user: {token: "$token"}}]
contexts: [{name: c, context: {cluster: c, user: tandem-operator, namespace: tandem-system}}]
current-context: c
KC
}

# start_operator <identity> [extra flags...]: runs build/bin/tandem-operator as the ServiceAccount;
# its pid is in OPERATOR_PID[<identity>], its log in $WORK/operator-<identity>.log. Stopped at exit.
declare -A OPERATOR_PID
start_operator() {
  local id="$1"; shift
  [[ -x "$TANDEM_BIN_DIR/tandem-operator" ]] || fail "no $TANDEM_BIN_DIR/tandem-operator (build it)"
  [[ -f "$WORK/operator.kubeconfig" ]] || operator_kubeconfig "$WORK/operator.kubeconfig"
  # --progress-interval 0: fake pods' IPs lead nowhere; the prober is tested with the stand-in.
  "$TANDEM_BIN_DIR/tandem-operator" --kubeconfig "$WORK/operator.kubeconfig" --metrics-host 127.0.0.1 \
    --metrics-port 0 --lease-namespace tandem-system --identity "$id" --progress-interval 0 \
    --schedule-interval 1 --termination-grace 1 "$@" >"$WORK/operator-$id.log" 2>&1 &
  OPERATOR_PID[$id]=$!
  defer "kill ${OPERATOR_PID[$id]} 2>/dev/null; wait ${OPERATOR_PID[$id]} 2>/dev/null"
}

# forbidden_calls: the operator ServiceAccount's requests since this test started that the
# authorizer refused (403 with decision "forbid" in the audit log: a 403 from an admission
# plugin after RBAC allowed the call is not one); prints them, returns 1 when there are any.
# Windows in APISERVER_STARTING ("begin,end" pairs, space-separated, from now_ts) are the time a
# restarted kube-apiserver already answers but its authorizer's caches have not synced yet: it
# then refuses everything. A 403 inside such a window counts only if the same verb on the same
# resource never succeeded after it.
APISERVER_STARTING=""
now_ts() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
forbidden_calls() {
  python3 - "$TANDEM_CLUSTER_STATE/logs/audit.log" "$OPERATOR_SA" "$TEST_START" "$APISERVER_STARTING" <<'PY2'
import json, sys
path, user, since, windows = sys.argv[1:5]
windows = [tuple(w.split(",")) for w in windows.split()]
events = []
for line in open(path):
    e = json.loads(line)
    if e.get("user", {}).get("username") == user and e.get("stageTimestamp", "") >= since:
        events.append(e)
def key(e):
    o = e.get("objectRef", {})
    return (e["verb"], o.get("apiGroup", ""), o.get("resource", ""), o.get("subresource", ""))
bad, excused = [], 0
for i, e in enumerate(events):
    if e.get("responseStatus", {}).get("code") != 403:
        continue
    if e.get("annotations", {}).get("authorization.k8s.io/decision") == "allow":
        # RBAC allowed it; an admission plugin refused it (NamespaceLifecycle: an Event into a
        # namespace another test is deleting). Not a missing permission.
        continue
    t = e["stageTimestamp"]
    if any(b <= t <= end for b, end in windows) and any(
            key(f) == key(e) and f.get("responseStatus", {}).get("code", 0) < 400 for f in events[i + 1:]):
        excused += 1
        continue
    bad.append(f'{e["verb"]} {e["requestURI"]}: {e["responseStatus"].get("message", "")[:200]}')
print(f"{len(events)} operator requests audited, {len(bad)} forbidden"
      + (f" ({excused} more refused while a restarted apiserver started, and allowed afterwards)" if excused else ""))
for b in bad: print("  FORBIDDEN", b)
sys.exit(1 if bad else 0)
PY2
}

# diagnose_job <ns> <name> [node-label-prefix]: what a failing wait needs to tell the operator, the
# scheduler, kwok or the node apart: the job's status, its pods (phase, node), the nodes' Ready
# condition and taints, and the job's events. Prints to stderr; never fails.
diagnose_job() {
  local ns="$1" name="$2" prefix="${3:-}"
  {
    echo "--- trainingjob $ns/$name status:"
    kubectl -n "$ns" get trainingjob "$name" -o jsonpath='{.status}' 2>&1; echo
    echo "--- its pods:"
    kubectl -n "$ns" get pods -l "tandem.dev/job=$name" -o wide 2>&1
    echo "--- nodes${prefix:+ (tandem.dev/test=$prefix)}: Ready, taints"
    kubectl get nodes ${prefix:+-l "tandem.dev/test=$prefix"} -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.spec.taints}{"\n"}{end}' 2>&1
    echo "--- its events:"
    kubectl -n "$ns" get events --field-selector "involvedObject.name=$name" 2>&1 | tail -n 15
    echo "--- kwok's log, last lines:"
    tail -n 15 "$TANDEM_CLUSTER_STATE/logs/kwok.log" 2>&1
  } >&2 || true
}

# tj <ns> <name> <jsonpath>: one field of a TrainingJob.
tj() { kubectl -n "$1" get trainingjob "$2" -o jsonpath="{$3}"; }
phase_is() { [[ "$(tj "$1" "$2" .status.phase)" == "$3" ]]; }

# --- the chart on the real node (node.sh) ------------------------------------------------------
# install_chart <namespace> [helm flags...]: charts/tandem as release "tandem" with the images the
# node holds (imagePullPolicy Never), into a namespace enforcing Pod Security "restricted",
# waiting for Ready pods; uninstalled at exit. Sets HELM to the helm binary.
install_chart() {
  local ns="$1"; shift
  HELM="$("$SRC/scripts/tools/build-helm.sh" | tail -n 1)" || fail "helm is not built (scripts/tools/build-helm.sh)"
  kubectl apply -f - >/dev/null <<NS
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels: {pod-security.kubernetes.io/enforce: restricted, pod-security.kubernetes.io/warn: restricted}
NS
  defer "'$HELM' uninstall tandem -n $ns --wait --timeout 2m >/dev/null 2>&1"
  "$HELM" install tandem "$SRC/charts/tandem" -n "$ns" --set image.pullPolicy=Never "$@" \
    --wait --timeout 5m >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "helm install --wait"; }
}

# node_volume <pv-name>: a pre-made hostPath PersistentVolume on the real node (no provisioner runs
# there) of storageClassName tandem-node-local, folder $WORK/pv, holding Fashion-MNIST under
# data/ (a TrainingJob has no data volume of its own: the manifest reads
# /var/lib/tandem/checkpoints/data/...). Owned by the workers' user (hostPath volumes get no
# fsGroup). A job's checkpoint claim of that class binds to it. Deleted at exit. Sets NODE_PV.
FASHION_MNIST=/usr/share/datasets/fashion-mnist
node_volume() {
  [[ -f $FASHION_MNIST/train-images-idx3-ubyte.gz ]] ||
    fail "$FASHION_MNIST has no Fashion-MNIST (apt-get install dataset-fashion-mnist)"
  NODE_PV="$WORK/pv"
  mkdir -p "$NODE_PV/data"
  cp "$FASHION_MNIST"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$NODE_PV/data/"
  chown -R 65532:65532 "$NODE_PV"
  kubectl delete pv "$1" --ignore-not-found --wait=true >/dev/null
  kubectl apply -f - >/dev/null <<PV
apiVersion: v1
kind: PersistentVolume
metadata: {name: $1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  storageClassName: tandem-node-local
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$NODE_PV", type: Directory}
PV
  defer "kubectl delete pv $1 --wait=false >/dev/null 2>&1"
}

# kill_tree <pid>: a background subshell and everything it started (a watch in a pipeline would
# outlive its subshell, and ctest waits for whatever still holds its output).
kill_tree() {
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done
  kill "$1" 2>/dev/null || true
}

# follow_logs <namespace> <pod> <container> <file>: `kubectl logs -f --timestamps` of a container
# into <file> from the moment it starts until it ends (a finished job's pods are deleted); stopped
# at exit.
follow_logs() {
  (
    for _ in $(seq 1 1200); do
      st="$(kubectl -n "$1" get pod "$2" -o jsonpath="{.status.containerStatuses[?(@.name==\"$3\")].state}" 2>/dev/null)" || true
      [[ "$st" == *running* || "$st" == *terminated* ]] && break
      sleep 0.5
    done
    kubectl -n "$1" logs -f --timestamps "$2" -c "$3" >"$4" 2>&1 || true
  ) </dev/null >/dev/null 2>&1 &
  defer "kill_tree $!"
}
