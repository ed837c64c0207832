#!/usr/bin/env bash
# The control plane of the cluster_up fixture is real and healthy: readyz, versions, RBAC on.
source "$(dirname "$0")/lib.sh"
[[ "$(kubectl get --raw /readyz)" == ok ]] || fail "/readyz is not ok"
pass "/readyz ok"
kubectl version -o json >"$WORK/version.json"
python3 - "$WORK/version.json" <<'PY' || fail "kubectl/apiserver version"
import json, sys
v = json.load(open(sys.argv[1]))
c, s = v["clientVersion"]["gitVersion"], v["serverVersion"]["gitVersion"]
print("client", c, "server", s)
assert c.startswith("v1.") and s.startswith("v1.") and "master" not in s, (c, s)
PY
# RBAC is enforced: an unprivileged ServiceAccount may not list nodes.
out="$(kubectl auth can-i list nodes --as=system:serviceaccount:default:default || true)"
[[ "$out" == no ]] || fail "RBAC not enforced: default SA can list nodes ($out)"
pass "RBAC enforced"
# The controller manager runs: the kube-root-ca.crt ConfigMap is published into namespaces.
eventually 60 kubectl -n default get configmap kube-root-ca.crt || fail "controller manager not running"
pass "kube-controller-manager publishes kube-root-ca.crt"
