#!/usr/bin/env bash
# One real Kubernetes node beside a control plane of controlplane.sh: containers really run.
#   containerd (Debian's, a private instance: own root, state and socket; CRI plugin; runc;
#   overlayfs) -> CNI (Debian's plugins: bridge + host-local on $TANDEM_NODE_POD_CIDR, loopback)
#   -> kubelet (cgroupfs driver, cgroup v1, TLS client certificate system:node:<name>, so the Node
#   authorizer and NodeRestriction apply) -> kube-proxy (iptables) -> CoreDNS (cluster DNS, on the
#   host) -> kube-scheduler; the pause image is built locally (images/pause.sh) and our images
#   (images/export.sh: tandem-operator, tandem-trainer) are imported into containerd's k8s.io
#   namespace, so pods run them with imagePullPolicy IfNotPresent and nothing is ever pulled.
# Addresses: the bridge tandem-cni0 holds $TANDEM_NODE_IP, the node's InternalIP: the kubelet, the
# DNS server and a relay to kube-apiserver's loopback port listen there (kube-apiserver advertises
# it, so the `kubernetes` Service leads pods there). Pods get no default route and no masquerade:
# they reach each other, Services and the node, never an address off this machine.
# Needs root. Writes into <state-dir>/node/ (logs in <state-dir>/logs/node-*.log).
# Usage: tests/cluster/node.sh up|down <state-dir>     (<state-dir>: the control plane's, up)
# What this sandbox forbids and how each part works around it: docs/operator.md, "The real node".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmd="${1:-}"; state="${2:-}"
[[ -n "$cmd" && -n "$state" ]] || { echo "usage: $0 up|down <state-dir>" >&2; exit 2; }
state="$(cd "$state" && pwd)"
[[ -f "$state/env.sh" ]] || { echo "node: no control plane at $state (controlplane.sh up first)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$state/env.sh"
node="$state/node"
sock="$node/run/containerd.sock"
bridge=tandem-cni0
CTR=(ctr --address "$sock" --namespace k8s.io)
snapshotter="${TANDEM_NODE_SNAPSHOTTER:-overlayfs}"
cgroup_root=tandem-node   # the kubelet's cgroupRoot, in every cgroup v1 hierarchy
K8S_BIN="$(TANDEM_TOOLS_NO_BUILD=1 "$root/scripts/tools/build-k8s.sh" --node 2>/dev/null | tail -n 1)" || K8S_BIN=""

log() { echo "node: $*" >&2; }
die() { echo "node: $*" >&2; exit 1; }
# start, ready: logs in <state>/logs/node-<name>.log, pids in node/pids/<name>.pid
PROC_WHO=node PROC_LOGS="$state/logs/node-" PROC_PIDS="$node/pids"
# shellcheck source=tests/cluster/procs.sh
source "$here/procs.sh"
stop() {  # stop <name>: SIGTERM, then SIGKILL after 10 s
  local f="$node/pids/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

down() {
  [[ -d "$node" ]] || { log "down (nothing was up)"; return 0; }
  # Pods first, while kubelet, containerd and the API server still run, so the kubelet tears each
  # sandbox down properly (CNI DEL releases its address, volumes are unmounted).
  if [[ -f "$node/pids/kubelet.pid" ]] && kubectl get --raw /readyz >/dev/null 2>&1; then
    kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$TANDEM_NODE_NAME" \
      --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
    for _ in $(seq 1 120); do
      [[ -z "$("${CTR[@]}" tasks ls -q 2>/dev/null)" ]] && break
      sleep 0.5
    done
  fi
  stop kubelet
  stop kube-scheduler
  stop coredns
  stop apiserver-relay
  if [[ -f "$node/pids/kube-proxy.pid" ]]; then
    stop kube-proxy
    [[ -z "$K8S_BIN" ]] || "$K8S_BIN/kube-proxy" --cleanup >>"$state/logs/node-kube-proxy.log" 2>&1 || true
  fi
  # Whatever the kubelet left (it was killed, or timed out): kill the containers and their shims.
  local c
  for c in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
  sleep 1
  for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" tasks rm -f "$c" >/dev/null 2>&1 || true
    "${CTR[@]}" containers rm "$c" >/dev/null 2>&1 || true
  done
  stop containerd
  # Network namespaces of sandboxes killed without the kubelet (only this containerd names them
  # cni-*: podman's are netns-*).
  local n
  for n in /var/run/netns/cni-*; do [[ -e "$n" ]] && ip netns delete "$(basename "$n")" 2>/dev/null; done
  # The kubelet's cgroups (kubepods, QoS classes, pods), deepest first.
  local d
  for d in /sys/fs/cgroup/*/"$cgroup_root"; do
    [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  # Mounts under the node's folder (sandbox /dev/shm, tmpfs volumes, overlay rootfs), deepest first.
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
    awk -v p="$node/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$node"
  log "down"
}

if [[ "$cmd" == down ]]; then down; exit 0; fi
[[ "$cmd" == up ]] || { echo "usage: $0 up|down <state-dir>" >&2; exit 2; }
[[ $(id -u) == 0 ]] || die "needs root (containerd, runc, the bridge, iptables)"

# --- what it runs: our builds (cached) and Debian's packages ------------------------------------
[[ -n "$K8S_BIN" ]] ||
  die "kubelet and kube-proxy are not built: run scripts/tools/build-k8s.sh --node (scripts/test.sh does)"
COREDNS_BIN="$(TANDEM_TOOLS_NO_BUILD=1 "$root/scripts/tools/build-coredns.sh" | tail -n 1)" ||
  die "coredns is not built: run scripts/tools/build-coredns.sh (scripts/test.sh does)"
scheduler="$(dirname "$(command -v kubectl)")/kube-scheduler"
[[ -x "$scheduler" ]] || die "missing $scheduler (scripts/tools/build-k8s.sh)"
for t in containerd containerd-shim-runc-v2 ctr runc iptables iptables-restore conntrack socat ip; do
  command -v "$t" >/dev/null || die "'$t' is missing: run scripts/install-deps.sh (containerd, runc, iptables, conntrack, socat, iproute2)"
done
for p in bridge host-local loopback; do
  [[ -x /usr/lib/cni/$p ]] || die "CNI plugin /usr/lib/cni/$p is missing: run scripts/install-deps.sh (containernetworking-plugins)"
done
pause_tar="$("$root/images/pause.sh" | tail -n 1)" || die "images/pause.sh could not build the pause image"
image_tars=()
for img in ${TANDEM_NODE_IMAGES:-operator trainer}; do
  t="$("$root/images/export.sh" "$img" | tail -n 1)" || die "image $img is not built: images/build.sh $img (the images_build fixture)"
  image_tars+=("$t")
done

down  # leftovers of an earlier run
mkdir -p "$node"/{pids,run,root,opt,cni/net.d,cni/ipam,kubelet,kube-proxy}
prefix="${TANDEM_NODE_POD_CIDR#*/}"
read -r P_KUBELET P_KUBELET_HEALTHZ P_SCHED P_PROXY_METRICS P_PROXY_HEALTHZ P_DNS_HEALTH < <("$root/scripts/tools/free-ports.py" 6)
P_API="${TANDEM_APISERVER##*:}"

# --- network: the bridge, forwarding between pods and to Services -------------------------------
sysctl -qw net.ipv4.ip_forward=1
# Service traffic between two pods of the same bridge must cross iptables, or the reply would
# skip kube-proxy's DNAT reversal.
[[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
  die "/proc/sys/net/bridge is missing (the br_netfilter module); Services between pods of the node cannot work"
sysctl -qw net.bridge.bridge-nf-call-iptables=1
ip link add "$bridge" type bridge
ip addr add "$TANDEM_NODE_IP/$prefix" dev "$bridge"
ip link set "$bridge" up
cat >"$node/cni/net.d/10-tandem.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "tandem-pods",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$node/cni/ipam",
        "ranges": [[{"subnet": "$TANDEM_NODE_POD_CIDR", "gateway": "$TANDEM_NODE_IP"}]],
        "routes": [{"dst": "10.96.0.0/16"}]
      }
    },
    {"type": "loopback"}
  ]
}
CNI

# --- containerd -----------------------------------------------------------------------------------
cat >"$node/containerd.toml" <<TOML
version = 2
root = "$node/root"
state = "$node/run/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/tandem/pause:${PAUSE_VERSION:-3.10.2}"
  tolerate_missing_hugepages_controller = true
  enable_selinux = false
  # The sandbox has no CAP_SYS_RESOURCE: lowering oom_score_adj is refused, and runc's init dies
  # ("failed to update /proc/self/oom_score_adj: Permission denied"; the kubelet asks -998 for
  # sandboxes, -997 for Guaranteed pods). Clamped to containerd's own (0) instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni/net.d"
TOML
start containerd containerd --config "$node/containerd.toml"
ready containerd 60 "${CTR[@]}" version
for t in "$pause_tar" "${image_tars[@]}"; do
  "${CTR[@]}" images import --snapshotter "$snapshotter" "$t" >>"$state/logs/node-containerd.log" 2>&1 ||
    die "ctr images import $t failed (log: $state/logs/node-containerd.log)"
done
log "containerd up, images: $("${CTR[@]}" images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --- the API server, reachable from pods ----------------------------------------------------------
start apiserver-relay socat "TCP-LISTEN:$P_API,bind=$TANDEM_NODE_IP,fork,reuseaddr" "TCP:127.0.0.1:$P_API"

# --- kube-scheduler (the chart's Deployment and helm test pods; the operator binds its workers) --
start kube-scheduler "$scheduler" --kubeconfig="$state/pki/scheduler.kubeconfig" \
  --authentication-kubeconfig="$state/pki/scheduler.kubeconfig" \
  --authorization-kubeconfig="$state/pki/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$P_SCHED" --leader-elect=false

# --- CoreDNS: cluster names only, on the node's address -------------------------------------------
kubectl apply -f - >/dev/null <<'RBAC'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "tandem:coredns"}
rules:
- {apiGroups: [""], resources: [services, namespaces, pods], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "tandem:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "tandem:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "tandem:coredns"}]
RBAC
cat >"$node/Corefile" <<DNS
.:53 {
  bind $TANDEM_NODE_IP
  errors
  cache 5
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $state/pki/coredns.kubeconfig tandem-test
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
}
DNS
start coredns "$COREDNS_BIN/coredns" -conf "$node/Corefile"

# --- kube-proxy -----------------------------------------------------------------------------------
cat >"$node/kube-proxy/config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$state/pki/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: "$TANDEM_NODE_POD_CIDR"
hostnameOverride: "$TANDEM_NODE_NAME"
bindAddress: 127.0.0.1
healthzBindAddress: "127.0.0.1:$P_PROXY_HEALTHZ"
metricsBindAddress: "127.0.0.1:$P_PROXY_METRICS"
nodePortAddresses: ["$TANDEM_NODE_IP/32"]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0}
YAML
start kube-proxy "$K8S_BIN/kube-proxy" --config="$node/kube-proxy/config.yaml"

# --- kubelet --------------------------------------------------------------------------------------
# Its cgroupRoot must exist in every hierarchy (the kubelet refuses to start: "cgroup
# [\"tandem-node\"] has some missing paths"); cpuset children start empty, so copy the CPUs and
# memory nodes down.
for d in /sys/fs/cgroup/*/; do
  [[ "$d" == */unified/ ]] && continue
  mkdir -p "$d$cgroup_root"
done
cp /sys/fs/cgroup/cpuset/cpuset.cpus "/sys/fs/cgroup/cpuset/$cgroup_root/cpuset.cpus"
cp /sys/fs/cgroup/cpuset/cpuset.mems "/sys/fs/cgroup/cpuset/$cgroup_root/cpuset.mems"
echo "nameserver $TANDEM_NODE_IP" >"$node/resolv.conf"
cat >"$node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: "unix://$sock"
imageServiceEndpoint: "unix://$sock"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupRoot: "/$cgroup_root"
address: "$TANDEM_NODE_IP"
port: $P_KUBELET
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $P_KUBELET_HEALTHZ
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$state/pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$state/pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$state/pki/kubelet-serving.key"
clusterDomain: cluster.local
clusterDNS: ["$TANDEM_NODE_IP"]
resolvConf: "$node/resolv.conf"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
serializeImagePulls: false
protectKernelDefaults: false
# How often the kubelet syncs every pod, which is also when it rewrites a mounted ConfigMap that
# changed (its watch sees the change at once; the volume follows at the pod's next sync). The
# default 1m made an elastic job's resize reach the trainers 66-72 s after the operator published
# it (docs/elastic.md); 10s keeps cluster_node_elastic_test short.
syncFrequency: "${TANDEM_KUBELET_SYNC_FREQUENCY:-10s}"
YAML
start kubelet "$K8S_BIN/kubelet" --config="$node/kubelet.yaml" \
  --kubeconfig="$state/pki/kubelet.kubeconfig" --hostname-override="$TANDEM_NODE_NAME" \
  --node-ip="$TANDEM_NODE_IP" --root-dir="$node/kubelet" --cert-dir="$node/kubelet/pki" \
  ${TANDEM_KUBELET_EXTRA_ARGS:-}
node_ready() {
  [[ "$(kubectl get node "$TANDEM_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
ready kubelet 180 node_ready
ready kube-proxy 60 curl -sf "http://127.0.0.1:$P_PROXY_HEALTHZ/healthz"
log "up: node $TANDEM_NODE_NAME Ready at $TANDEM_NODE_IP (pods $TANDEM_NODE_POD_CIDR)"
