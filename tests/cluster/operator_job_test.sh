#!/usr/bin/env bash
# A TrainingJob's life on the real control plane, with tandem-operator running as its
# ServiceAccount under deploy/rbac.yaml and nothing more, on kwok fake nodes:
# admitted; worker pods, Service and Secret accepted by the real validation; pods Running;
# `kubectl get tj` printer columns and `kubectl describe` events; a worker failure restarts the
# gang per restartPolicy; suspend and resume; preemption by a higher-priority job of another
# queue; TTL clean-up; deletion cascades through the real garbage collector. Any call that RBAC
# forbids (audit log, code 403) fails the test.
source "$(dirname "$0")/lib.sh"
NS=tj-life
apply_crds
new_namespace "$NS"
fake_nodes life 2 8
pass "2 kwok nodes Ready (8 GPUs each)"

# Queues: `owner` is guaranteed all 16 GPUs and reclaims them; `borrower` has no guarantee.
owner_and_borrower_queues life "$NS" 16 64 512Gi

job() {  # job <name> <queue> <workers> <gpus-per-worker> [priority] [extra spec yaml lines]
  cat <<J
apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS}
spec:
  queue: $2
  priority: ${5:-0}
  image: tandem/tandem:0.1.0
  workers: {count: $3}
  trainer: {resources: {requests: {cpu: "1", memory: 2Gi, nvidia.com/gpu: $4}}}
  pserver: {resources: {requests: {cpu: 500m, memory: 1Gi}}}
  passes: 1
  model: {inputs: [{name: image, source: features, shape: [1, 28, 28]}, {name: label, source: labels}], layers: [{name: fc1, type: fc, input: image, size: 10}, {name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}], cost: cost}
  data: {train: {format: idx}, test: {format: idx}, batchSize: 64}
  restartPolicy: {backoffLimit: 3, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
${6:-}
J
}
workers_of() { kubectl -n "$NS" get pods -l "tandem.dev/job=$1" -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.metadata.uid}{"\n"}{end}'; }
running_count() { workers_of "$1" | awk '$2 == "Running"' | wc -l; }
all_running() { [[ "$(running_count "$1")" -eq "$2" ]] && phase_is "$NS" "$1" Running; }

start_operator life-a

# --- admitted, children created and accepted, Running ---------------------------------------
job a life-owner 2 4 | kubectl apply -f - >/dev/null
eventually 120 all_running a 2 || { tail -n 30 "$WORK/operator-life-a.log"; fail "job a not Running with 2 workers"; }
pass "job a admitted, 2 worker pods Running on kwok nodes"
for kind in service secret; do
  [[ -n "$(kubectl -n "$NS" get "$kind" -l tandem.dev/job=a -o name)" ]] || fail "no $kind for job a"
done
# (No `cmd | grep -q` or `| head` anywhere: with pipefail, the writer's SIGPIPE fails the test.)
grep -q life- <<<"$(kubectl -n "$NS" get pods -l tandem.dev/job=a -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}')" \
  || fail "workers not bound to the kwok nodes"
pass "Service and Secret created; pods bound by the operator"

# Job a keeps nothing on a pserver (no embedding tables, dense sync over the ring: api::UsesPServers),
# so its pods hold the trainer container alone, the trainers get no TANDEM_PSERVERS and the
# Service has no pserver port.
containers_of() { kubectl -n "$NS" get pods -l "tandem.dev/job=$1" -o jsonpath='{range .items[*]}{range .spec.containers[*]}{.name} {end}{"\n"}{end}'; }
[[ "$(containers_of a)" == $'trainer \ntrainer ' ]] || fail "job a's pods: containers $(containers_of a)"
env_names="$(kubectl -n "$NS" get pods -l tandem.dev/job=a -o jsonpath='{.items[*].spec.containers[*].env[*].name}')"
[[ "$env_names" == *TANDEM_PEERS* && "$env_names" != *TANDEM_PSERVERS* ]] || fail "job a's trainers' env: $env_names"
svc_ports="$(kubectl -n "$NS" get service a -o jsonpath='{.spec.ports[*].name}')"
[[ "$svc_ports" == collective ]] || fail "job a's Service ports: $svc_ports"
pass "a dense job on the ring: trainer-only pods, no TANDEM_PSERVERS, no pserver port"

out="$(kubectl -n "$NS" get tj a)"
echo "$out"
head -n1 <<<"$out" | grep -qE '^NAME +PHASE +READY +WORKERS +QUEUE +PROGRESS +AGE$' || fail "printer columns: $out"
sed -n 2p <<<"$out" | grep -qE '^a +Running +2 +2 +life-owner ' || fail "printer row: $out"
pass "kubectl get tj shows the printer columns"
desc="$(kubectl -n "$NS" describe tj a)"
grep -qE 'Normal +Admitted' <<<"$desc" || { echo "$desc" | tail -n 20; fail "kubectl describe shows no Admitted event"; }
pass "kubectl describe shows the events"

# --- a worker fails with a retryable exit code: the gang restarts ---------------------------
before="$(workers_of a | awk '{print $3}' | sort)"
victim="$(workers_of a | awk 'NR == 1 {print $1}')"
[[ -n "$victim" ]] || fail "no worker of job a to fail"
kubectl -n "$NS" patch pod "$victim" --subresource=status --type=merge -p \
  '{"status":{"phase":"Failed","containerStatuses":[{"name":"trainer","ready":false,"restartCount":0,"image":"tandem/tandem:0.1.0","imageID":"","state":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}}' >/dev/null
eventually 120 bash -c "[[ \$(kubectl -n $NS get tj a -o jsonpath='{.status.restarts}') == 1 ]]" || fail "restart not counted"
# Restarted: all Running again, and no pod of the old gang (by uid) is left.
restarted() {
  all_running a 2 || return 1
  local now; now="$(workers_of a | awk '{print $3}')"
  ! grep -qxFf <(echo "$before") <<<"$now"
}
eventually 120 restarted || fail "gang not recreated after the failure"
grep -qE 'WorkerFailed' <<<"$(kubectl -n "$NS" describe tj a)" || fail "no WorkerFailed event"
pass "worker failure (exit 137) restarted the gang (restarts=1, new pods Running)"

# --- suspend and resume ---------------------------------------------------------------------
kubectl -n "$NS" patch tj a --type=merge -p '{"spec":{"suspend":true}}' >/dev/null
eventually 60 bash -c "[[ \$(kubectl -n $NS get tj a -o jsonpath='{.status.phase}') == Suspended && -z \$(kubectl -n $NS get pods -l tandem.dev/job=a -o name) ]]" \
  || fail "suspend did not stop the workers"
pass "suspended: phase Suspended, no workers"
kubectl -n "$NS" patch tj a --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
eventually 120 all_running a 2 || fail "resume did not bring the workers back"
pass "resumed: Running again"

# --- preemption: a borrower fills the cluster, the owner's urgent job reclaims ---------------
job b life-borrower 2 4 0 | kubectl apply -f - >/dev/null
eventually 120 all_running b 2 || fail "job b (borrower) not Running"
job c life-owner 2 4 100 | kubectl apply -f - >/dev/null
eventually 120 all_running c 2 || fail "job c (owner, priority 100) not Running"
eventually 60 bash -c "[[ \$(kubectl -n $NS get tj b -o jsonpath='{.status.conditions[?(@.type==\"Preempted\")].status}') == True ]]" \
  || fail "job b not marked Preempted"
phase_is "$NS" b Queued || fail "preempted job b is $(tj "$NS" b .status.phase), not Queued"
pass "job c (owner queue) preempted borrower job b, which is Queued again"
kubectl -n "$NS" delete tj b --wait=false >/dev/null

# --- TTL clean-up after success ---------------------------------------------------------------
kubectl -n "$NS" delete tj c --wait=false >/dev/null
job d life-owner 1 1 0 $'  ttlSecondsAfterFinished: 2\n  sync: {dense: pserver}' | kubectl apply -f - >/dev/null
eventually 120 all_running d 1 || fail "job d not Running"
# Its dense parameters live on the pservers: each pod runs one beside the trainer.
[[ "$(containers_of d)" == 'trainer pserver ' ]] || fail "job d's pods: containers $(containers_of d)"
pass "a job with sync.dense: pserver keeps the pserver container"
for p in $(workers_of d | awk '{print $1}'); do
  kubectl -n "$NS" patch pod "$p" --subresource=status --type=merge -p \
    '{"status":{"phase":"Succeeded","containerStatuses":[{"name":"trainer","ready":false,"restartCount":0,"image":"tandem/tandem:0.1.0","imageID":"","state":{"terminated":{"exitCode":0,"reason":"Completed"}}},{"name":"pserver","ready":false,"restartCount":0,"image":"tandem/tandem:0.1.0","imageID":"","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}' >/dev/null
done
eventually 60 phase_is "$NS" d Succeeded || fail "job d not Succeeded"
eventually 60 bash -c "! kubectl -n $NS get tj d >/dev/null 2>&1" || fail "job d not deleted by its TTL"
pass "job d Succeeded and was deleted after ttlSecondsAfterFinished"

# --- deletion cascades through the garbage collector -----------------------------------------
uid="$(tj "$NS" a .metadata.uid)"
kubectl -n "$NS" delete tj a --wait=false >/dev/null
gone() {
  local o
  o="$(kubectl -n "$NS" get pods,services,secrets,configmaps -o json | python3 -c "
import json,sys
items=json.load(sys.stdin)['items']
print(sum(1 for i in items for r in i['metadata'].get('ownerReferences',[]) if r['uid']=='$uid'))")"
  [[ "$o" == 0 ]]
}
eventually 120 gone || fail "children of job a survived its deletion"
pass "deleting job a removed its pods, Service, Secret and ConfigMap (garbage collector)"

forbidden_calls || fail "the operator made calls RBAC forbids"
# A 403 from NamespaceLifecycle (an Event or Secret into a namespace another test is deleting,
# seen by this operator too: it watches every namespace) is not a missing permission.
grep -iE 'forbidden' "$WORK/operator-life-a.log" | grep -v 'because it is being terminated' &&
  fail "the operator logged a forbidden call"
pass "no forbidden call"
