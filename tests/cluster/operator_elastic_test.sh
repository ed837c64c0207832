#!/usr/bin/env bash
# Elastic TrainingJobs (spec.elastic, docs/elastic.md) on the real control plane, the operator
# running as its ServiceAccount under deploy/rbac.yaml, kwok fake nodes (no trainer runs: the
# trainers' side of a resize is what the pods' statuses are patched to):
# - a job in a queue with idle capacity grows to maxCount: new worker pods, the
#   <job>-membership ConfigMap raised to a new epoch with every peer, status.elastic and its
#   history, a Resized Event;
# - another tenant's job reclaiming its guarantee shrinks it toward minCount instead of
#   preempting it: a new epoch without the highest ranks; the leaving pods are deleted once their
#   trainers exit 0, and the other job is admitted then;
# - a worker that fails for good (exit 1) shrinks it instead of failing or restarting the job.
# The real apiserver validates status.elastic against the CRD schema on every write.
source "$(dirname "$0")/lib.sh"
NS=tj-elastic
apply_crds
new_namespace "$NS"
fake_nodes elastic 1 4
pass "1 kwok node Ready (4 GPUs)"

owner_and_borrower_queues elastic "$NS" 4 32 256Gi

job() {  # job <name> <queue> <workers yaml> [extra spec yaml lines]
  cat <<J
apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS}
spec:
  queue: $2
  image: tandem/tandem:0.1.0
  workers: $3
  trainer: {resources: {requests: {cpu: "1", memory: 2Gi, nvidia.com/gpu: 1}}}
  pserver: {resources: {requests: {cpu: 500m, memory: 1Gi}}}
  passes: 1
  model: {inputs: [{name: image, source: features, shape: [1, 28, 28]}, {name: label, source: labels}], layers: [{name: fc1, type: fc, input: image, size: 10}, {name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}], cost: cost}
  data: {train: {format: idx}, test: {format: idx}, batchSize: 64}
  restartPolicy: {backoffLimit: 3, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
${4:-}
J
}
pods_of() { kubectl -n "$NS" get pods -l "tandem.dev/job=$1" -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{"\n"}{end}'; }
running_count() { pods_of "$1" | awk '$2 == "Running" && $3 == ""' | wc -l; }
elastic() { tj "$NS" "$1" ".status.elastic.$2"; }
membership() {  # membership <job> <python expression over m>
  kubectl -n "$NS" get configmap "$1-membership" -o jsonpath='{.data.membership\.json}' |
    python3 -c "import json,sys; m=json.load(sys.stdin); print($2)"
}
last_resize() { kubectl -n "$NS" get tj "$1" -o json | python3 -c "
import json,sys; r=json.load(sys.stdin)['status']['elastic']['resizes']; print(r[-1]['$2'] if r else '')"; }
has_event() {  # has_event <job> <reason> <message substring>
  kubectl -n "$NS" get events --field-selector "involvedObject.name=$1,reason=$2" -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' |
    grep -qF -- "$3"
}
exit_trainer() {  # exit_trainer <pod> <code>: what the kubelet reports when the trainer exits
  local phase=Succeeded
  [[ "$2" != 0 ]] && phase=Failed
  kubectl -n "$NS" patch pod "$1" --subresource=status --type=merge -p \
    "{\"status\":{\"phase\":\"$phase\",\"containerStatuses\":[{\"name\":\"trainer\",\"ready\":false,\"restartCount\":0,\"image\":\"tandem/tandem:0.1.0\",\"imageID\":\"\",\"state\":{\"terminated\":{\"exitCode\":$2,\"reason\":\"Completed\"}}}]}}" >/dev/null
}

start_operator elastic-a --elastic-cooldown 2

# --- grows into idle capacity -----------------------------------------------------------------
job e elastic-borrower "{count: 2, minCount: 1, maxCount: 4}" "  elastic: {policy: constantGlobalBatch}" |
  kubectl apply -f - >/dev/null
eventually 120 bash -c "[[ \$(kubectl -n $NS get tj e -o jsonpath='{.status.elastic.workers}') == 4 ]]" ||
  { tail -n 30 "$WORK/operator-elastic-a.log"; fail "job e did not grow to 4 workers"; }
eventually 60 bash -c "[[ \$(kubectl -n $NS get pods -l tandem.dev/job=e -o name | wc -l) == 4 ]]" || fail "no 4 worker pods"
[[ "$(last_resize e reason)" == Grow && "$(last_resize e from)" == 2 && "$(last_resize e to)" == 4 ]] ||
  fail "status.elastic.resizes: $(elastic e resizes)"
[[ "$(last_resize e lostSteps)" == 0 ]] || fail "a planned grow loses no step"
epoch="$(elastic e epoch)"
(( epoch >= 1 )) || fail "epoch $epoch after a grow"
eventually 60 bash -c "[[ \$(kubectl -n $NS get configmap e-membership -o jsonpath='{.data.membership\.json}' | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m[\"epoch\"], len(m[\"peers\"]))') == '$epoch 4' ]]" ||
  fail "ConfigMap e-membership: $(kubectl -n "$NS" get configmap e-membership -o jsonpath='{.data}')"
[[ "$(membership e 'm["peers"][3]')" == "e-worker-3.e.$NS.svc:7000" ]] || fail "peers by stable DNS name: $(membership e 'm')"
eventually 30 has_event e Resized "2 -> 4 workers" || fail "no Resized event for the grow"
# Every worker mounts the membership and names it in TANDEM_MEMBERSHIP; the new ones started
# with the planned membership of 4.
env3="$(kubectl -n "$NS" get pod e-worker-3 -o jsonpath='{range .spec.containers[0].env[*]}{.name}={.value}{"\n"}{end}')"
grep -qx 'TANDEM_MEMBERSHIP=/etc/tandem-membership/membership.json' <<<"$env3" || fail "TANDEM_MEMBERSHIP: $env3"
grep -qx 'TANDEM_WORLD_SIZE=4' <<<"$env3" || fail "new worker's world: $env3"
[[ "$(kubectl -n "$NS" get pod e-worker-0 -o jsonpath='{.spec.volumes[?(@.name=="membership")].configMap.name}')" == e-membership ]] ||
  fail "worker 0 does not mount e-membership"
pass "job e grew 2 -> 4 into idle capacity (pods, ConfigMap epoch $epoch with 4 peers, status history, Resized event)"

# --- another tenant reclaims: shrink, not preemption ------------------------------------------
job o elastic-owner "{count: 2}" | kubectl apply -f - >/dev/null
eventually 60 bash -c "[[ \$(kubectl -n $NS get tj e -o jsonpath='{.status.elastic.workers}') == 2 ]]" ||
  { tail -n 30 "$WORK/operator-elastic-a.log"; fail "job e was not shrunk to 2"; }
[[ "$(last_resize e reason)" == ReclaimBorrowed && "$(last_resize e to)" == 2 ]] || fail "resizes: $(elastic e resizes)"
[[ "$(tj "$NS" e '.status.conditions[?(@.type=="Preempted")].status')" != True ]] || fail "job e was preempted whole"
phase_is "$NS" e Running || fail "job e is $(tj "$NS" e .status.phase)"
epoch2="$(elastic e epoch)"
(( epoch2 > epoch )) || fail "shrink did not raise the epoch"
eventually 60 bash -c "[[ \$(kubectl -n $NS get configmap e-membership -o jsonpath='{.data.membership\.json}' | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m[\"epoch\"], len(m[\"peers\"]))') == '$epoch2 2' ]]" ||
  fail "ConfigMap after the shrink: $(kubectl -n "$NS" get configmap e-membership -o jsonpath='{.data}')"
eventually 30 has_event e Resized "4 -> 2 workers" || fail "no Resized event for the shrink"
# The leaving trainers still run (they leave at a step boundary): their pods stay, o waits.
sleep 3
[[ "$(running_count e)" == 4 ]] || fail "leaving workers deleted before their trainers exited: $(pods_of e)"
phase_is "$NS" o Queued || fail "job o is $(tj "$NS" o .status.phase) while e's leaving workers still hold the GPUs"
for p in e-worker-2 e-worker-3; do exit_trainer "$p" 0; done
eventually 60 bash -c "[[ -z \$(kubectl -n $NS get pods e-worker-2 e-worker-3 --ignore-not-found -o name) ]]" ||
  fail "leaving pods not deleted after their trainers exited: $(pods_of e)"
eventually 60 bash -c "[[ \$(kubectl -n $NS get tj o -o jsonpath='{.status.phase}') =~ Admitted|Running ]]" ||
  fail "job o not admitted once e's workers left: $(tj "$NS" o .status.pendingReason)"
pass "job o (owner queue) shrank e 4 -> 2 (epoch $epoch2, not preempted); o admitted once the leaving workers exited"

# --- a worker fails for good: shrink ------------------------------------------------------------
exit_trainer e-worker-1 1
eventually 60 bash -c "[[ \$(kubectl -n $NS get tj e -o json | python3 -c \"import json,sys; print(any(r['reason']=='WorkerFailed' and r['from']==2 and r['to']==1 for r in json.load(sys.stdin)['status']['elastic']['resizes']))\") == True ]]" ||
  { tail -n 30 "$WORK/operator-elastic-a.log"; fail "worker failure did not shrink e: $(elastic e resizes)"; }
phase_is "$NS" e Running || fail "job e is $(tj "$NS" e .status.phase) after a worker failed above minCount"
[[ "$(tj "$NS" e .status.restarts)" == "" || "$(tj "$NS" e .status.restarts)" == 0 ]] || fail "the gang was restarted"
eventually 30 has_event e Resized "worker 1 (e-worker-1) failed" || fail "no Resized event for the failure"
pass "a worker failing for good (exit 1) shrank e 2 -> 1 instead of failing the job"

forbidden_calls || fail "the operator made calls RBAC forbids"
