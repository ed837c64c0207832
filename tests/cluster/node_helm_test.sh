#!/usr/bin/env bash
# `helm install` of charts/tandem on the real node (fixture cluster_node: node.sh), with the
# locally built operator image (imagePullPolicy Never: containerd holds it, nothing is pulled), in
# a namespace that enforces Pod Security "restricted"; the operator pods become Ready on the node;
# then `helm test` runs the chart's test pod there, which asks the operator's metrics Service (by
# its DNS name, through CoreDNS and kube-proxy) for /healthz and a leader. Uninstalled at the end
# (the CRDs stay, as the chart promises).
source "$(dirname "$0")/lib.sh"
node="$TANDEM_NODE_NAME" ns=tandem-system
[[ "$(kubectl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] ||
  fail "node $node is not Ready"
defer "kubectl -n $ns get pods -o wide >&2; kubectl -n $ns get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 30 >&2"
install_chart "$ns"
pass "helm install: $(kubectl -n "$ns" get deploy tandem-operator -o jsonpath='{.status.readyReplicas}') of 2 operator replicas Ready"
nodes="$(kubectl -n "$ns" get pods -l app.kubernetes.io/component=operator -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u)"
[[ "$nodes" == "$node" ]] || fail "operator pods are on '$nodes', not on $node"
ids="$(kubectl -n "$ns" get pods -l app.kubernetes.io/component=operator -o jsonpath='{range .items[*]}{.status.containerStatuses[0].containerID}{"\n"}{end}')"
grep -q '^containerd://' <<<"$ids" || fail "operator containers not run by containerd: $ids"
pass "operator pods run on $node under containerd"

"$HELM" test tandem -n "$ns" --timeout 3m --logs >"$WORK/test.log" 2>&1 || { cat "$WORK/test.log" >&2; fail "helm test"; }
cat "$WORK/test.log"
grep -q "Phase: *Succeeded" "$WORK/test.log" || fail "helm test: the test pod did not succeed"
grep -q "leader found; operator metrics served" "$WORK/test.log" || fail "helm test: the test pod's log lacks its success line"
pass "helm test: the test pod ran on $node and found a leader through the metrics Service"

# The default Queue: the leading operator pod creates it from the chart's ConfigMap (not a Helm
# hook: those raced the Queue CRD becoming established, operator/controller/default_queue.h).
eventually 60 kubectl get queue default || fail "the operator created no default Queue"
[[ "$(kubectl get queue default -o jsonpath='{.metadata.labels.app\.kubernetes\.io/created-by}')" == tandem-operator ]] ||
  fail "the default Queue was not created from the chart's ConfigMap: $(kubectl get queue default -o yaml)"
pass "the leading operator created the default Queue (weight $(kubectl get queue default -o jsonpath='{.spec.weight}'))"
