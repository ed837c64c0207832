#!/usr/bin/env bash
# spec.serving on the real node (fixture cluster_node: node.sh): the chart's operator runs the
# Fashion-MNIST job of node_e2e_test.sh (2 real worker pods, 100 steps) with spec.publish
# (everySteps 10) and spec.serving (1 replica, 1 thread, 100m); its checkpoint claim binds to a
# hostPath PersistentVolume on the one node, which the serving pod mounts read-only. Checked:
# - the operator's <job>-serve Deployment becomes Ready once a model is loaded, on the node;
# - a predict request to the serving pod's IP and one through the <job>-serve Service (ClusterIP,
#   kube-proxy) answer with the model version, the same version and predictions;
# - the version served rises to the job's final published version (hot reload), and the answer is
#   the one tandem-serve run on this machine gives on the volume's published/ folder;
# - the namespace enforces Pod Security "restricted" (workers and serving pod are admitted);
# - deleting the job deletes the Deployment and the Service (the garbage collector).
source "$(dirname "$0")/lib.sh"
node="$TANDEM_NODE_NAME" ns=tandem-system ml=ml-serving job=fmnist-serving
[[ -x "$TANDEM_BIN_DIR/tandem-serve" ]] || fail "no $TANDEM_BIN_DIR/tandem-serve (build it)"
trainer_image="$("$SRC/images/build.sh" --tags trainer)"

install_chart "$ns" --set operator.replicas=1 --set operator.resources.requests.cpu=50m \
  --set operator.progressInterval=2 --set operator.terminationGrace=10
pass "operator installed by the chart"

node_volume tandem-node-serving
new_namespace "$ml"
# The workers and the serving pod are built for Pod Security "restricted": enforce it.
kubectl label namespace "$ml" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
defer "kubectl -n $ml get trainingjob,deploy,svc,pods -o wide >&2 2>/dev/null; kubectl -n $ml get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 30 >&2"

python3 - "$SRC/examples/fashion-mnist.yaml" "$trainer_image" "$ml" "$job" >"$WORK/job.yaml" <<'PY'
import sys, yaml
src, image, ns, name = sys.argv[1:]
job = yaml.safe_load(open(src))
job["metadata"].update(name=name, namespace=ns)
s = job["spec"]
s["image"] = image
s["passes"] = 1
s["trainer"]["resources"] = {"requests": {"cpu": "400m", "memory": "1Gi"}}
s["pserver"]["resources"] = {"requests": {"cpu": "50m", "memory": "256Mi"}}
d = "/var/lib/tandem/checkpoints/data"
files = lambda p, n: {"format": "idx", "images": f"{d}/{p}-images-idx3-ubyte.gz",
                      "labels": f"{d}/{p}-labels-idx1-ubyte.gz", "limit": n}
s["data"]["train"] = files("train", 12800)     # 100 steps of 2 x 64
s["data"]["test"] = files("t10k", 1000)
s["checkpoint"] = {"intervalSteps": 200, "keep": 3, "size": "1Gi", "storageClassName": "tandem-node-local"}
s["restartPolicy"]["backoffLimit"] = 0
s["publish"] = {"everySteps": 10, "keep": 3}
s["serving"] = {"replicas": 1, "threads": 1, "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}
yaml.safe_dump(job, sys.stdout, sort_keys=False)
PY
kubectl apply -f "$WORK/job.yaml" >/dev/null || fail "kubectl apply of the job"
pass "kubectl apply: $job (publish everySteps 10, serving 1 replica)"
for r in 0 1; do follow_logs "$ml" "$job-worker-$r" trainer "$WORK/trainer-$r.log"; done

# One test image as the request (the trainer's reader scales bytes by 1/255).
python3 - "$FASHION_MNIST/t10k-images-idx3-ubyte.gz" >"$WORK/request.json" <<'PY'
import gzip, json, sys
raw = gzip.open(sys.argv[1]).read()
img = [b / 255.0 for b in raw[16:16 + 784]]
json.dump({"instances": [{"image": img}]}, sys.stdout)
PY
predict() { curl -sS --max-time 20 -H 'Content-Type: application/json' --data-binary "@$WORK/request.json" "http://$1/v1/predict"; }
field() { python3 -c "import json,sys; a=json.loads(sys.argv[1]); print($2)" "$1"; }

# --- the Deployment becomes Ready once a model is loaded ---------------------------------------
serve="$job-serve"
eventually 120 kubectl -n "$ml" get deploy "$serve" >/dev/null || fail "no Deployment $serve"
eventually 120 kubectl -n "$ml" get svc "$serve" >/dev/null || fail "no Service $serve"
deadline=$((SECONDS + 600))
until [[ "$(kubectl -n "$ml" get deploy "$serve" -o jsonpath='{.status.readyReplicas}')" == 1 ]]; do
  phase="$(tj "$ml" "$job" .status.phase)"
  [[ "$phase" == Failed ]] && fail "the job failed: $(tj "$ml" "$job" .status.conditions)"
  (( SECONDS < deadline )) || fail "Deployment $serve not Ready after 600 s: $(kubectl -n "$ml" get deploy "$serve" -o jsonpath='{.status}')"
  sleep 2
done
pod="$(kubectl -n "$ml" get pods -l "tandem.dev/serving=$job" -o jsonpath='{.items[0].metadata.name}')"
pod_ip="$(kubectl -n "$ml" get pod "$pod" -o jsonpath='{.status.podIP}')"
[[ "$(kubectl -n "$ml" get pod "$pod" -o jsonpath='{.spec.nodeName}')" == "$node" ]] || fail "serving pod not on $node"
pass "Deployment $serve Ready (pod $pod at $pod_ip on $node) while the job is $(tj "$ml" "$job" .status.phase)"
kubectl -n "$ml" logs "$pod" >"$WORK/serve-early.log" 2>&1 || true

first="$(predict "$pod_ip:8080")" || fail "predict at the pod $pod_ip:8080: $first"
v_first="$(field "$first" 'a["model"]["version"]')" || fail "no model version in '$first'"
pass "pod $pod_ip:8080/v1/predict answers: version $v_first, step $(field "$first" 'a["model"]["step"]')"
cluster_ip="$(kubectl -n "$ml" get svc "$serve" -o jsonpath='{.spec.clusterIP}')"
via_svc="$(predict "$cluster_ip:8080")" || fail "predict through the Service $cluster_ip:8080: $via_svc"
v_svc="$(field "$via_svc" 'a["model"]["version"]')"
(( v_svc >= v_first )) || fail "the Service answered with version $v_svc, older than the pod's $v_first"
pass "Service $serve ($cluster_ip:8080, kube-proxy) answers: version $v_svc"

# --- the job finishes; the served version reaches the final one --------------------------------
deadline=$((SECONDS + 600))
until phase_is "$ml" "$job" Succeeded; do
  phase_is "$ml" "$job" Failed && fail "the job failed: $(tj "$ml" "$job" .status.conditions)"
  (( SECONDS < deadline )) || fail "the job is $(tj "$ml" "$job" .status.phase) after 600 s"
  sleep 2
done
pass "job Succeeded: $(tj "$ml" "$job" .status.progress)"
published="$(dirname "$(find "$NODE_PV" -name MANIFEST.json -path '*/v*/MANIFEST.json' | head -n 1)")"
published="$(dirname "$published")"
[[ -d "$published" ]] || fail "no published model on the volume: $(find "$NODE_PV" -maxdepth 3)"
final="$(ls "$published" | grep -E '^v[0-9]{12}$' | sort | tail -n 1)"
final=$((10#${final#v}))
(( final >= 10 )) || fail "newest published version $final, expected 10 or more (100 steps, every 10)"
eventually 120 bash -c "[[ \$(curl -s --max-time 5 http://$pod_ip:8080/v1/model | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"version\"])') == $final ]]" ||
  fail "the pod does not serve the final version $final: $(curl -s --max-time 5 "http://$pod_ip:8080/v1/model" | head -c 300)"
if (( v_first < final )); then advanced="advanced from $v_first to $final while the job published"
else advanced="first answer already at the final version $final"; fi
pass "served version $advanced (published/ at ${published#"$NODE_PV"/} on the volume)"

on_pod="$(predict "$pod_ip:8080")" || fail "predict at the pod: $on_pod"
on_svc="$(predict "$cluster_ip:8080")" || fail "predict through the Service: $on_svc"
port="$("$SRC/scripts/tools/free-ports.py" 1)"
"$TANDEM_BIN_DIR/tandem-serve" --model-dir "$published" --host 127.0.0.1 --port "$port" --grpc-port -1 \
  --workers 1 >"$WORK/serve-local.log" 2>&1 &
defer "kill $! 2>/dev/null"
eventually 60 curl -sf "http://127.0.0.1:$port/readyz" || fail "local tandem-serve not ready: $(tail -n 5 "$WORK/serve-local.log")"
local_answer="$(predict "127.0.0.1:$port")" || fail "local predict: $local_answer"
python3 - "$on_pod" "$on_svc" "$local_answer" "$final" <<'PY' || fail "answers differ: pod $on_pod / service $on_svc / local $local_answer"
import json, sys
pod, svc, loc = (json.loads(a) for a in sys.argv[1:4])
final = int(sys.argv[4])
for name, a in (("pod", pod), ("service", svc), ("local", loc)):
    assert a["model"]["version"] == final, f'{name} serves version {a["model"]["version"]}, not {final}'
p, s, l = pod["predictions"][0], svc["predictions"][0], loc["predictions"][0]
assert len(p) == 10 and abs(sum(p) - 1) < 1e-4, p
# The same binary's source, the same weights: the image's build and this machine's may pick other
# oneDNN kernels, so allow float rounding, never another class.
assert max(abs(x - y) for x, y in zip(p, l)) < 1e-4 and p.index(max(p)) == l.index(max(l)), (p, l)
assert p == s, (p, s)
print(f"class {p.index(max(p))}, p={max(p):.4f}; pod/local max difference {max(abs(x - y) for x, y in zip(p, l)):.2e}")
PY
pass "pod, Service and local tandem-serve on the volume's published/ agree (version $final)"

# --- deleting the job deletes its serving children ---------------------------------------------
kubectl -n "$ml" delete trainingjob "$job" --wait=true >/dev/null
eventually 120 bash -c "[[ -z \$(kubectl -n $ml get deploy,svc $serve --ignore-not-found -o name) ]]" ||
  fail "Deployment/Service $serve still there after the job was deleted"
eventually 120 bash -c "[[ -z \$(kubectl -n $ml get pods -l tandem.dev/serving=$job -o name) ]]" ||
  fail "serving pods still there after the job was deleted"
pass "deleting the job deleted Deployment and Service $serve and the serving pod (garbage collector)"
