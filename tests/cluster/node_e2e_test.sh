#!/usr/bin/env bash
# The user's whole flow on the real node (fixture cluster_node: node.sh): the chart installs the
# operator (its image, imagePullPolicy Never), then `kubectl apply` of examples/fashion-mnist.yaml
# made into a bounded test job (the locally built trainer image, 1 pass over 6,400 training
# examples = 50 steps of 2 x 64, 2,000 test examples, smaller CPU requests to fit this 2-core node,
# the dataset read from the checkpoint volume), with its checkpoint claim bound to a pre-made
# hostPath PersistentVolume (no provisioner runs here) that also holds the dataset. The operator's
# two worker pods run their trainers (a dense job: no pserver) in real containers on the node, find each other through
# CoreDNS (headless Service), train over the TCP ring, and the job reaches Succeeded with
# status.progress set; both ranks report the same test accuracy, and `tandem run` of the same
# job on this machine (2 local workers) reaches the same accuracy.
source "$(dirname "$0")/lib.sh"
node="$TANDEM_NODE_NAME" ns=tandem-system ml=ml-e2e job=fashion-mnist
[[ -x "$TANDEM_BIN_DIR/tandem" ]] || fail "no $TANDEM_BIN_DIR/tandem (build it)"
trainer_image="$("$SRC/images/build.sh" --tags trainer)"

# --- the operator, as users install it --------------------------------------------------------
install_chart "$ns" --set operator.progressInterval=1 --set operator.terminationGrace=10
pass "operator installed by the chart, $(kubectl -n "$ns" get deploy tandem-operator -o jsonpath='{.status.readyReplicas}') replicas Ready"

# --- storage: a pre-made hostPath PersistentVolume the job's claim binds to ---------------------
node_volume tandem-node-e2e
new_namespace "$ml"
defer "kubectl -n $ml get trainingjob,pods,pvc -o wide >&2 2>/dev/null; kubectl -n $ml get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 30 >&2"

# --- the job: examples/fashion-mnist.yaml, bounded ---------------------------------------------
python3 - "$SRC/examples/fashion-mnist.yaml" "$trainer_image" "$ml" "$WORK" <<'PY'
import sys, yaml
src, image, ns, work = sys.argv[1:]
def make(data_dir):
    job = yaml.safe_load(open(src))
    job["metadata"]["namespace"] = ns
    s = job["spec"]
    s["image"] = image
    s["passes"] = 1
    s["trainer"]["resources"] = {"requests": {"cpu": "400m", "memory": "1Gi"}}
    s["pserver"]["resources"] = {"requests": {"cpu": "50m", "memory": "256Mi"}}
    files = lambda p, n: {"format": "idx", "images": f"{data_dir}/{p}-images-idx3-ubyte.gz",
                          "labels": f"{data_dir}/{p}-labels-idx1-ubyte.gz", "limit": n}
    s["data"]["train"] = files("train", 6400)
    s["data"]["test"] = files("t10k", 2000)
    s["checkpoint"] = {"intervalSteps": 200, "keep": 3, "size": "1Gi", "storageClassName": "tandem-node-local"}
    s["restartPolicy"]["backoffLimit"] = 0   # a failure shows at once, not after retries
    return job
yaml.safe_dump(make("/var/lib/tandem/checkpoints/data"), open(f"{work}/job.yaml", "w"), sort_keys=False)
yaml.safe_dump(make("/usr/share/datasets/fashion-mnist"), open(f"{work}/job-local.yaml", "w"), sort_keys=False)
PY
kubectl apply -f "$WORK/job.yaml" >/dev/null || fail "kubectl apply of the job"
pass "kubectl apply -f job.yaml (examples/fashion-mnist.yaml with image $trainer_image, 50 steps)"

# Follow both trainers' logs while they run (the finished job's pods are deleted).
for r in 0 1; do follow_logs "$ml" "$job-worker-$r" trainer "$WORK/trainer-$r.log"; done

deadline=$((SECONDS + 600))
while true; do
  phase="$(tj "$ml" "$job" .status.phase)"
  [[ "$phase" == Succeeded ]] && break
  [[ "$phase" == Failed ]] && fail "the job failed: $(tj "$ml" "$job" .status.conditions)"
  (( SECONDS < deadline )) || fail "the job is $phase after 600 s: $(tj "$ml" "$job" .status)"
  sleep 2
done
for r in 0 1; do
  for _ in $(seq 1 60); do grep -q 'test_accuracy=' "$WORK/trainer-$r.log" 2>/dev/null && break; sleep 0.5; done
done
pass "job Succeeded: $(tj "$ml" "$job" .status.workers)"
placement="$(tj "$ml" "$job" '.status.placement[*]')"
[[ "$placement" == "$node $node" ]] || fail "placement '$placement', expected both workers on $node"
progress="$(tj "$ml" "$job" .status.progress)"
[[ -n "$progress" ]] || fail "no status.progress"
p_acc="$(tj "$ml" "$job" .status.progress.accuracy)"
pass "status.progress: $progress"

declare -A acc=()
for r in 0 1; do
  line="$(grep -o 'test_accuracy=[0-9.]* test_loss=[0-9.]*' "$WORK/trainer-$r.log" | tail -n 1)" ||
    fail "trainer rank $r printed no summary; its log: $(tail -n 20 "$WORK/trainer-$r.log")"
  grep -q "all-reduce uses TCP" "$WORK/trainer-$r.log" || fail "rank $r did not all-reduce over TCP between the pods"
  acc[$r]="${line#test_accuracy=}"; acc[$r]="${acc[$r]%% *}"
  pass "rank $r (pod): $line"
done
[[ "${acc[0]}" == "${acc[1]}" ]] || fail "the ranks disagree: ${acc[0]} vs ${acc[1]}"
# The final figures come from rank 0's result, which the kubelet copied from the trainer's
# termination message into the pod's status (api/worker_result.h), not from the last scrape.
t_pass="$(tj "$ml" "$job" .status.progress.testPass)"
t_acc="$(tj "$ml" "$job" .status.progress.testAccuracy)"
[[ "$t_pass" == 1 ]] || fail "status.progress.testPass is '$t_pass', not 1: rank 0's termination message did not reach the status"
python3 -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 1e-4 else 1)' "$t_acc" "${acc[0]}" ||
  fail "status.progress.testAccuracy $t_acc is not rank 0's final ${acc[0]}"
pass "status.progress.testAccuracy $t_acc = rank 0's final result (its termination message, through the kubelet)"

# --- the same job with `tandem run` on this machine ----------------------------------------------
"$TANDEM_BIN_DIR/tandem" run "$WORK/job-local.yaml" --run-dir "$WORK/run" >"$WORK/run.log" 2>&1 ||
  fail "tandem run failed: $(tail -n 20 "$WORK/run.log")"
local_acc="$(grep -o 'test_accuracy[^0-9]*[0-9.]*' "$WORK/run.log" | tail -n 1 | grep -o '[0-9.]*$')" ||
  fail "tandem run printed no test_accuracy: $(tail -n 20 "$WORK/run.log")"
pass "tandem run: test_accuracy=$local_acc; on the node: ${acc[0]}; status.progress.accuracy=$p_acc"
python3 - "${acc[0]}" "$local_acc" "$p_acc" <<'PY' || fail "accuracies differ: node ${acc[0]}, tandem run $local_acc, status.progress $p_acc"
import sys
node, local, progress = map(float, sys.argv[1:])
# 10 classes: chance is 0.1. Same data, seed, world size and ring: the two runs agree closely.
ok = node > 0.5 and abs(node - local) <= 0.02 and progress > 0.3
sys.exit(0 if ok else 1)
PY
pass "the node's run and tandem run agree"
