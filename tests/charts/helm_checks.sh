#!/usr/bin/env bash
# The chart's offline checks with the real helm (scripts/tools/build-helm.sh) and the Kubernetes
# schemas (scripts/tools/validate-k8s.py): run by ctest, one check per call.
#   helm_checks.sh build | lint | template-default | template-full | rbac-source | bad-values | values-doc
set -euo pipefail
src="${TANDEM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
chart="$src/charts/tandem"
out="${TANDEM_BINARY_DIR:-/tmp}/tests/charts"
mkdir -p "$out"
helm=$("$src/scripts/tools/build-helm.sh")
py=/usr/bin/python3
# The monitoring kinds exist only with prometheus-operator; tell helm template the cluster has them.
monitoring=(--api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PodMonitor
            --api-versions monitoring.coreos.com/v1/PrometheusRule)

validate() {  # validate FILE: every object against the Kubernetes 1.36 schemas, our CRDs and
  # prometheus-operator's (ServiceMonitor, PodMonitor, PrometheusRule; scripts/tools/monitoring-crds.sh)
  local mon
  mon=$("$src/scripts/tools/monitoring-crds.sh")
  "$py" "$src/scripts/tools/validate-k8s.py" --openapi "$("$src/scripts/tools/k8s-openapi.sh")" \
    --crd "$src/crds/trainingjob.yaml" --crd "$src/crds/queue.yaml" --crd "$src/crds/sweep.yaml" \
    --crd "$mon/monitoring.coreos.com_servicemonitors.yaml" --crd "$mon/monitoring.coreos.com_podmonitors.yaml" \
    --crd "$mon/monitoring.coreos.com_prometheusrules.yaml" --restricted "$1"
}
kinds() { grep -E '^kind: ' "$1" | sort | uniq -c | sed 's/^ */  /'; }

case "${1:-}" in
  build) "$helm" version ;;
  lint)
    "$helm" lint --strict "$chart"
    # helm lint has no --api-versions: the prometheus-operator kinds are linted through template-full.
    "$helm" lint --strict "$chart" -f "$src/tests/charts/values-full.yaml" --set metrics.serviceMonitor.enabled=false \
      --set metrics.podMonitor.enabled=false --set metrics.prometheusRule.enabled=false ;;
  template-default)
    "$helm" template tandem "$chart" --namespace tandem-system > "$out/default.yaml"
    kinds "$out/default.yaml"
    validate "$out/default.yaml" ;;
  template-full)
    "$helm" template tandem "$chart" --namespace tandem-system -f "$src/tests/charts/values-full.yaml" \
      "${monitoring[@]}" --include-crds > "$out/full.yaml"
    kinds "$out/full.yaml"
    for k in CustomResourceDefinition Deployment Service ServiceMonitor PodMonitor PrometheusRule ConfigMap \
             PodDisruptionBudget NetworkPolicy ClusterRole ClusterRoleBinding Role RoleBinding ServiceAccount Pod; do
      grep -q "^kind: $k\$" "$out/full.yaml" || { echo "full values render no $k"; exit 1; }
    done
    validate "$out/full.yaml"
    # The default Queue is a manifest the operator creates (--default-queue), in a ConfigMap the
    # Deployment mounts: it carries the values and passes the Queue CRD's schema.
    "$py" - "$out/full.yaml" "$out/full-default-queue.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-default-queue"))
dep = next(d for d in docs if d["kind"] == "Deployment")
c = dep["spec"]["template"]["spec"]["containers"][0]
assert "--default-queue=/etc/tandem/default-queue/queue.yaml" in c["args"], c["args"]
assert any(m["mountPath"] == "/etc/tandem/default-queue" for m in c["volumeMounts"]), c["volumeMounts"]
vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
assert vols["default-queue"]["configMap"]["name"] == cm["metadata"]["name"], vols
q = yaml.safe_load(cm["data"]["queue.yaml"])
assert q["kind"] == "Queue" and q["metadata"]["name"] == "default", q
assert q["spec"] == {"weight": 2, "guaranteed": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0"}}, q["spec"]
open(sys.argv[2], "w").write(cm["data"]["queue.yaml"])
print("default Queue: the operator's --default-queue manifest, weight 2, guaranteed 8 CPUs")
PY
    validate "$out/full-default-queue.yaml"
    # The PrometheusRule carries the same rules as the plain file promtool checks.
    "$py" - "$out/full.yaml" "$chart/files/alerts.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
rule = next(d for d in docs if d["kind"] == "PrometheusRule")
plain = yaml.safe_load(open(sys.argv[2]))
def names(groups): return [r.get("alert") or r.get("record") for g in groups for r in g["rules"]]
assert names(rule["spec"]["groups"]) == names(plain["groups"]), "PrometheusRule and files/alerts.yaml differ"
urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
assert urls and all(u.startswith("https://wiki.example.com/tandem/runbooks#") for u in urls), urls
print(f"PrometheusRule: {len(urls)} alerts, runbook URLs rebased")
PY
    ;;
  rbac-source)
    # The chart's operator rules are deploy/rbac.yaml's (one source): compare them rule by rule.
    "$helm" template tandem "$chart" --namespace tandem-system -s templates/rbac.yaml > "$out/rbac.yaml"
    "$py" - "$out/rbac.yaml" "$src/deploy/rbac.yaml" <<'PY'
import sys, yaml
chart = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deploy = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
def rules(docs, kind, suffix):
    return next(d["rules"] for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix))
for kind, suffix in (("ClusterRole", "tandem-operator"), ("Role", "leader-election")):
    a, b = rules(chart, kind, suffix), rules(deploy, kind, suffix)
    assert a == b, f"{kind} rules differ:\nchart: {a}\ndeploy/rbac.yaml: {b}"
    print(f"{kind} *{suffix}: {len(a)} rules, identical to deploy/rbac.yaml")
agg = {d["metadata"]["name"]: d["metadata"]["labels"] for d in chart if d["kind"] == "ClusterRole"}
for n in ("tandem-trainingjob-editor", "tandem-sweep-editor"):
    assert agg[n].get("rbac.authorization.k8s.io/aggregate-to-edit") == "true", n
for n in ("tandem-trainingjob-viewer", "tandem-queue-viewer", "tandem-sweep-viewer"):
    assert agg[n].get("rbac.authorization.k8s.io/aggregate-to-view") == "true", n
assert "rbac.authorization.k8s.io/aggregate-to-edit" not in agg["tandem-queue-editor"], "queues are cluster-scoped"
print("editor/viewer roles aggregate into edit/view")
PY
    ;;
  bad-values)
    # values.schema.json refuses what the chart cannot render, with the field's name.
    for bad in "operator.replicas=zero" "image.pullPolicy=Sometimes" "crds.keep=maybe" "operator.bogus=1" \
               "metrics.podMonitor.interval=15"; do
      if msg=$("$helm" template t "$chart" --set "$bad" 2>&1); then echo "accepted $bad"; exit 1; fi
      key="${bad%%=*}"; leaf="${key##*.}"
      grep -q "$leaf" <<<"$msg" || { echo "refused $bad without naming $leaf: $msg"; exit 1; }
      echo "refused $bad: $(grep -m1 -o "$leaf.*" <<<"$msg" | cut -c1-100)"
    done
    msg=$("$helm" template t "$chart" --set defaultQueue.guaranteed.cpu=4 2>&1) && { echo "accepted a guarantee without memory and GPUs"; exit 1; }
    grep -q "guaranteed" <<<"$msg" && echo "refused defaultQueue.guaranteed with cpu only"
    # Rules the schema cannot express fail with a message naming the values.
    msg=$("$helm" template t "$chart" --set operator.leaderElection.enabled=false 2>&1) && { echo "accepted 2 replicas without election"; exit 1; }
    grep -q "leaderElection" <<<"$msg" && echo "refused replicas > 1 without leader election"
    msg=$("$helm" template t "$chart" --set metrics.serviceMonitor.enabled=true 2>&1) && { echo "rendered a ServiceMonitor without its API"; exit 1; }
    grep -q "monitoring.coreos.com/v1 ServiceMonitor" <<<"$msg" && echo "refused a ServiceMonitor on a cluster without prometheus-operator"
    ;;
  values-doc)
    # Every key of values.yaml has a row in the chart's README and a type in values.schema.json.
    "$py" - "$chart" <<'PY'
import json, re, sys, yaml
chart = sys.argv[1]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
readme = open(f"{chart}/README.md").read()
schema = json.load(open(f"{chart}/values.schema.json"))
def leaves(d, prefix=""):
    for k, v in d.items():
        p = f"{prefix}{k}"
        if isinstance(v, dict) and v and not p.endswith(("resources", "SecurityContext", "securityContext", "Selector")):
            yield from leaves(v, p + ".")
        else:
            yield p
missing, untyped = [], []
for key in leaves(values):
    parts = key.split(".")
    documented = f"`{key}`" in readme or any(f"`{'.'.join(parts[:i])}.*`" in readme or f"`{'.'.join(parts[:i])}`" in readme
                                             for i in range(len(parts) - 1, 0, -1)) or re.search(rf"`\.{re.escape(parts[-1])}`", readme)
    if not documented:
        missing.append(key)
    s = schema
    for part in parts:
        s = s.get("properties", {}).get(part)
        if s is None:
            untyped.append(key)
            break
assert not missing, f"values without a README row: {missing}"
assert not untyped, f"values without a type in values.schema.json: {untyped}"
print(f"{len(list(leaves(values)))} values: each documented in README.md and typed in values.schema.json")
PY
    ;;
  *) echo "usage: $0 build|lint|template-default|template-full|rbac-source|bad-values|values-doc" >&2; exit 2 ;;
esac
