#!/usr/bin/env bash
# An elastic resize with real trainers on the real kubelet (fixture cluster_node: node.sh). The
# chart's operator (--elastic-cooldown 20) runs the Fashion-MNIST CNN of node_e2e_test.sh as an
# elastic ring job {count: 2, minCount: 1, maxCount: 3} (constantGlobalBatch: global batch 2 x 64,
# one pass over 51,200 examples = 400 steps; CPU limit = request) in a queue without guarantee, beside an owner queue guaranteed
# 1 CPU. Requests are sized for this node's 2 CPUs (a dense ring job's workers run no pserver:
# 450m each): 3 elastic workers fit, but not beside the owner queue's job (800m), nor beside a
# placeholder pod (680m) that the test deletes once both trainers formed their ring.
# - grow 2 -> 3 into idle capacity: the operator creates worker 2, raises the <job>-membership
#   ConfigMap's epoch once it runs, the kubelet refreshes the mounted file, ranks 0 and 1 switch
#   at a step boundary and worker 2 joins there;
# - the owner queue's job reclaims its guarantee: the operator shrinks the job 3 -> 2 (a new
#   epoch, not a preemption); worker 2 leaves at a step boundary, its trainer exits 0 and its pod
#   is deleted; the owner's job is admitted then;
# - the elastic job Succeeds: status.elastic history (Grow 2 -> 3, ReclaimBorrowed 3 -> 2,
#   lostSteps 0), Resized Events, ranks 0 and 1 end at the same step, and the examples trained by
#   the three trainers add up to the pass (the data guarantee, docs/elastic.md).
# Printed, never asserted: the delay from each ConfigMap update (watched here) to the trainers'
# "elastic: epoch" log lines (kubectl logs --timestamps), i.e. the kubelet's refresh of the mounted
# ConfigMap plus at most one step (docs/elastic.md, "On Kubernetes").
source "$(dirname "$0")/lib.sh"
node="$TANDEM_NODE_NAME" ns=tandem-system ml=ml-elastic job=fm-elastic other=fm-owner
trainer_image="$("$SRC/images/build.sh" --tags trainer)"

install_chart "$ns" --set operator.replicas=1 --set operator.resources.requests.cpu=50m \
  --set operator.progressInterval=2 --set operator.terminationGrace=10 \
  --set 'operator.extraArgs={--elastic-cooldown=20}'
pass "operator installed by the chart (--elastic-cooldown=20)"

node_volume tandem-node-elastic
new_namespace "$ml"
kubectl label namespace "$ml" pod-security.kubernetes.io/enforce=restricted >/dev/null
defer "kubectl -n $ml get trainingjob,pods -o wide >&2 2>/dev/null; kubectl -n $ml get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 >&2"
owner_and_borrower_queues el "$ml" 0 1 8Gi

python3 - "$SRC/examples/fashion-mnist.yaml" "$trainer_image" "$ml" "$job" "$other" "$WORK" <<'PY'
import sys, yaml
src, image, ns, name, other, work = sys.argv[1:]
d = "/var/lib/tandem/checkpoints/data"
files = lambda p, n: {"format": "idx", "images": f"{d}/{p}-images-idx3-ubyte.gz",
                      "labels": f"{d}/{p}-labels-idx1-ubyte.gz", "limit": n}
def make(name, queue, workers, cpu, checkpoint, n):
    job = yaml.safe_load(open(src))
    job["metadata"].update(name=name, namespace=ns)
    s = job["spec"]
    s.update(image=image, queue=queue, workers=workers, passes=1, checkpoint=checkpoint)
    # The CPU limit paces the trainers alike on an idle and a loaded machine, so that the job
    # still trains when the shrink reaches it.
    s["trainer"]["resources"] = {"requests": {"cpu": cpu, "memory": "512Mi"}, "limits": {"cpu": cpu}}
    s["pserver"]["resources"] = {"requests": {"cpu": "20m", "memory": "64Mi"}}
    s["data"]["train"] = files("train", n)
    s["data"]["test"] = files("t10k", 1000)
    s["restartPolicy"]["backoffLimit"] = 0
    return job
e = make(name, "el-borrower", {"count": 2, "minCount": 1, "maxCount": 3}, "450m",
         {"intervalSteps": 1000, "keep": 1, "size": "1Gi", "storageClassName": "tandem-node-local"}, 51200)
e["spec"]["elastic"] = {"policy": "constantGlobalBatch"}
# The owner's job shares the elastic job's claim (one hostPath volume on this node) and keeps
# running until the test deletes it, so nothing regrows the elastic job behind the test's back.
o = make(other, "el-owner", {"count": 1, "minCount": 1, "maxCount": 1}, "800m",
         {"intervalSteps": 1000, "keep": 1, "storage": "ExistingClaim", "claimName": f"{name}-checkpoints"}, 60000)
yaml.safe_dump(e, open(f"{work}/elastic.yaml", "w"), sort_keys=False)
yaml.safe_dump(o, open(f"{work}/owner.yaml", "w"), sort_keys=False)
PY

elastic() { tj "$ml" "$job" ".status.elastic.$1"; }
resizes() { kubectl -n "$ml" get tj "$job" -o json | python3 -c "
import json,sys; print(' '.join(f\"{r['reason']}:{r['from']}->{r['to']}:lost={r.get('lostSteps')}\" for r in json.load(sys.stdin)['status']['elastic'].get('resizes', [])))"; }
has_event() { kubectl -n "$ml" get events --field-selector "involvedObject.name=$job,reason=Resized" -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep -qF -- "$1"; }
cm_epoch() { kubectl -n "$ml" get configmap "$job-membership" -o jsonpath='{.data.membership\.json}' | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["epoch"], len(m["peers"]))'; }
# epoch_line <log> <epoch>: the timestamp of the trainer's first line naming that epoch.
epoch_time() { grep -m1 -E "elastic: (epoch $2 |joined the running job .*membership epoch $2,|not in membership epoch $2 )" "$1" | cut -d' ' -f1; }
delay() {  # delay <kubectl logs timestamp> <epoch seconds>: seconds between them
  python3 -c 'import re, sys, calendar, time
m = re.fullmatch(r"(\d+-\d+-\d+T\d+:\d+:\d+)(?:\.(\d+))?Z", sys.argv[1])
t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float("0." + (m.group(2) or "0"))
print(f"{t - float(sys.argv[2]):.1f}")' "$1" "$2" 2>/dev/null || echo "?"
}
# A placeholder pod holds 680m until both trainers train, so that the grow comes after the first
# ring formed and this test sees the order it checks (ring at epoch 0, then the switch at a step
# boundary). A grow during start-up once split the trainers between two epochs here (exit 75);
# the trainers now meet at the newest epoch (docs/elastic.md, "The start-up race";
# trainer_elastic_startup_test), which this test does not exercise on the kubelet.
kubectl apply -f - >/dev/null <<P
apiVersion: v1
kind: Pod
metadata: {name: placeholder, namespace: $ml}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: wait
    image: $trainer_image
    imagePullPolicy: Never
    command: [tandem-serve, --model-dir, /nonexistent, --port, "8080", --grpc-port, "-1"]
    resources: {requests: {cpu: 680m, memory: 64Mi}}
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
P
eventually 120 kubectl -n "$ml" wait --for=condition=Ready pod/placeholder --timeout=5s >/dev/null ||
  fail "placeholder pod not Ready: $(kubectl -n "$ml" get pod placeholder -o jsonpath='{.status}')"
kubectl apply -f "$WORK/elastic.yaml" >/dev/null || fail "kubectl apply of the elastic job"
for r in 0 1 2; do follow_logs "$ml" "$job-worker-$r" trainer "$WORK/trainer-$r.log"; done
for r in 0 1; do  # the ring of the first membership is formed: both trainers are at epoch 0
  eventually 600 grep -q "data-parallel: rank $r of 2" "$WORK/trainer-$r.log" ||
    fail "rank $r formed no ring of 2: $(tail -n 5 "$WORK/trainer-$r.log")"
done
[[ "$(elastic workers)" == 2 ]] || fail "the job grew while the placeholder held the capacity: $(resizes)"
kubectl -n "$ml" delete pod placeholder --wait=false >/dev/null
pass "both trainers train at 2 workers; the placeholder pod is deleted, freeing 680m"
# Every published epoch of the ConfigMap, with the time this test saw it (a watch, not a poll).
eventually 300 kubectl -n "$ml" get configmap "$job-membership" || fail "no ConfigMap $job-membership: $(tj "$ml" "$job" .status)"
( kubectl -n "$ml" get configmap "$job-membership" -w -o jsonpath='{.data.membership\.json}{"\n"}' 2>/dev/null |
  while IFS= read -r line; do echo "$(date +%s.%N) $line"; done ) </dev/null >"$WORK/configmap.log" 2>/dev/null &
defer "kill_tree $!"
cm_seen() {  # cm_seen <epoch>: when this test saw the ConfigMap at that epoch
  grep -m1 "\"epoch\":$1[,}]" "$WORK/configmap.log" | cut -d' ' -f1
}
phase_is "$ml" "$job" Running || fail "job $job not Running: $(tj "$ml" "$job" .status)"

# --- grow 2 -> 3 --------------------------------------------------------------------------------
eventually 300 bash -c "[[ \$(kubectl -n $ml get tj $job -o jsonpath='{.status.elastic.workers}') == 3 ]]" ||
  fail "job did not grow to 3 workers: $(resizes); $(kubectl -n "$ml" get pods -o wide)"
grow_epoch="$(elastic epoch)"
[[ "$(kubectl -n "$ml" get pod "$job-worker-2" -o jsonpath='{.spec.nodeName}')" == "$node" ]] || fail "no worker 2 on $node"
eventually 60 bash -c "[[ \"\$(kubectl -n $ml get configmap $job-membership -o jsonpath='{.data.membership\.json}' | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m[\"epoch\"], len(m[\"peers\"]))')\" == '$grow_epoch 3' ]]" ||
  fail "ConfigMap not at epoch $grow_epoch with 3 peers: $(cm_epoch)"
eventually 60 has_event "2 -> 3 workers" || fail "no Resized event for the grow"
pass "operator grew the job 2 -> 3: worker 2 on $node, ConfigMap epoch $grow_epoch with 3 peers, Resized event"
for r in 0 1 2; do
  eventually 400 bash -c "[[ -n \"\$(grep -m1 -E 'elastic: (epoch $grow_epoch |joined the running job .*membership epoch $grow_epoch,)' '$WORK/trainer-$r.log')\" ]]" ||
    fail "trainer $r did not switch to epoch $grow_epoch: $(tail -n 5 "$WORK/trainer-$r.log")"
done
grep -m1 "elastic: epoch $grow_epoch " "$WORK/trainer-0.log" | grep -q " 2 -> 3 trainers" || fail "rank 0: $(grep -m1 "epoch $grow_epoch" "$WORK/trainer-0.log")"
t_cm="$(cm_seen "$grow_epoch")"
pass "grow: ranks 0, 1 switched and worker 2 joined at epoch $grow_epoch: $(grep -m1 "elastic: epoch $grow_epoch " "$WORK/trainer-0.log" | cut -d' ' -f2- | cut -c1-90)"
pass "grow: ConfigMap update -> trainer's epoch line: rank 0 $(delay "$(epoch_time "$WORK/trainer-0.log" "$grow_epoch")" "$t_cm") s, rank 1 $(delay "$(epoch_time "$WORK/trainer-1.log" "$grow_epoch")" "$t_cm") s, worker 2 $(delay "$(epoch_time "$WORK/trainer-2.log" "$grow_epoch")" "$t_cm") s"

# --- the owner's job reclaims: shrink 3 -> 2 ---------------------------------------------------
( kubectl -n "$ml" get pod "$job-worker-2" -w -o jsonpath='{.status.containerStatuses[?(@.name=="trainer")].state.terminated.exitCode}{"\n"}' ) </dev/null >"$WORK/worker-2-exit.log" 2>/dev/null &
defer "kill_tree $!"
kubectl apply -f "$WORK/owner.yaml" >/dev/null || fail "kubectl apply of the owner's job"
defer "kubectl -n $ml delete tj $other --wait=false >/dev/null 2>&1"
eventually 300 bash -c "[[ \$(kubectl -n $ml get tj $job -o jsonpath='{.status.elastic.workers}') == 2 ]]" ||
  fail "job was not shrunk to 2: $(resizes); owner: $(tj "$ml" "$other" .status)"
shrink_epoch="$(elastic epoch)"
(( shrink_epoch > grow_epoch )) || fail "the shrink did not raise the epoch ($shrink_epoch)"
[[ "$(tj "$ml" "$job" '.status.conditions[?(@.type=="Preempted")].status')" != True ]] || fail "the job was preempted whole"
eventually 60 has_event "3 -> 2 workers" || fail "no Resized event for the shrink"
eventually 400 grep -q "left the job after step" "$WORK/trainer-2.log" ||
  fail "worker 2 did not leave: $(tail -n 5 "$WORK/trainer-2.log")"
eventually 120 bash -c "[[ -z \$(kubectl -n $ml get pod $job-worker-2 --ignore-not-found -o name) ]]" ||
  fail "worker 2's pod was not deleted: $(kubectl -n "$ml" get pod "$job-worker-2" -o jsonpath='{.status}')"
exit2="$(grep -E '^[0-9]+$' "$WORK/worker-2-exit.log" | tail -n 1)"
[[ "$exit2" == 0 ]] || fail "worker 2's trainer exited '$exit2' (watched: $(tr '\n' ' ' <"$WORK/worker-2-exit.log"))"
for r in 0 1; do
  eventually 60 bash -c "[[ -n \"\$(grep -m1 'elastic: epoch $shrink_epoch ' '$WORK/trainer-$r.log')\" ]]" ||
    fail "rank $r did not switch to epoch $shrink_epoch: $(tail -n 5 "$WORK/trainer-$r.log")"
done
t_cm="$(cm_seen "$shrink_epoch")"
pass "shrink: epoch $shrink_epoch, worker 2 $(grep -m1 -o 'left the job after step [0-9]*' "$WORK/trainer-2.log"), exit 0, pod deleted"
pass "shrink: ConfigMap update -> trainer's epoch line: rank 0 $(delay "$(epoch_time "$WORK/trainer-0.log" "$shrink_epoch")" "$t_cm") s, rank 1 $(delay "$(epoch_time "$WORK/trainer-1.log" "$shrink_epoch")" "$t_cm") s, worker 2 $(delay "$(epoch_time "$WORK/trainer-2.log" "$shrink_epoch")" "$t_cm") s"
eventually 300 bash -c "[[ \$(kubectl -n $ml get tj $other -o jsonpath='{.status.phase}') =~ Admitted|Running ]]" ||
  fail "the owner's job was not admitted after the shrink: $(tj "$ml" "$other" .status)"
pass "the owner's job was admitted once worker 2 left"

# --- the elastic job finishes -------------------------------------------------------------------
deadline=$((SECONDS + 900))
until phase_is "$ml" "$job" Succeeded; do
  phase_is "$ml" "$job" Failed && fail "the job failed: $(tj "$ml" "$job" .status.conditions)"
  (( SECONDS < deadline )) || fail "the job is $(tj "$ml" "$job" .status.phase) after 900 s"
  sleep 3
done
for r in 0 1; do
  eventually 60 grep -q 'test_accuracy=' "$WORK/trainer-$r.log" || fail "rank $r printed no summary: $(tail -n 5 "$WORK/trainer-$r.log")"
done
history="$(resizes)"
grep -q "Grow:2->3:lost=0" <<<"$history" && grep -q "ReclaimBorrowed:3->2:lost=0" <<<"$history" ||
  fail "status.elastic.resizes: $history"
pass "job Succeeded; status.elastic.resizes: $history; progress $(tj "$ml" "$job" .status.progress.summary), step $(tj "$ml" "$job" .status.progress.step)"
python3 - "$WORK"/trainer-{0,1,2}.log "$(tj "$ml" "$job" .status.progress.step)" <<'PY' || fail "steps or examples do not add up"
import re, sys
logs = [open(p).read() for p in sys.argv[1:4]]
status_step = int(sys.argv[4])
end = [re.search(r"test_accuracy=([0-9.]+) .* steps=(\d+) examples=(\d+)", l) for l in logs[:2]]
left = re.search(r"left the job after step (\d+) .*examples=(\d+)", logs[2])
assert all(end) and left, "missing summary or leave lines"
steps = [int(m.group(2)) for m in end]
examples = [int(m.group(3)) for m in end] + [int(left.group(2))]
assert steps[0] == steps[1] == status_step, f"ranks ended at steps {steps}, status.progress.step {status_step}"
# constantGlobalBatch: the pass is dealt in global batches of 128 whatever the world size, so the
# job takes as many steps as unresized, and every example is trained once by someone.
assert steps[0] == 51200 // 128, f"{steps[0]} steps, not the {51200 // 128} of an unresized pass"
assert sum(examples) == 51200, f"examples per trainer {examples} sum to {sum(examples)}, not 51200"
print(f"steps {steps[0]} on ranks 0 and 1 (= status, = unresized); examples {examples} = {sum(examples)}; "
      f"test accuracy {end[0].group(1)}")
PY
pass "steps and examples add up (above)"
kubectl -n "$ml" delete tj "$other" --wait=false >/dev/null
