#!/usr/bin/env bash
# A Sweep on the real control plane, with tandem-operator running as its ServiceAccount under
# deploy/rbac.yaml, on a kwok fake node: the CRD accepts the example-shaped Sweep; trials become
# TrainingJobs owned by the Sweep and admitted through the template's Queue, which holds one
# trial at a time (the other waits Queued); `kubectl get sw` shows the printer columns; as the
# kubelet's part is played (pods Succeeded) the trials finish one after the other. kwok pods run
# no trainer, so no trial reports a value: the sweep ends Failed with reason NoObjective (early
# stopping and the best trial are tested with the stand-in, operator_sweep_e2e_test). Deleting
# the Sweep removes its trials and their pods through the real garbage collector. Any call RBAC
# forbids fails the test.
source "$(dirname "$0")/lib.sh"
NS=sweep-life
apply_crds
new_namespace "$NS"
fake_nodes sweep 1 0
pass "a kwok node Ready"

# Room for one trial: a trial's worker is its trainer alone (1 CPU; nothing lives on a pserver,
# so no pserver container is run or counted, api::UsesPServers), two would need 2.
kubectl apply -f - >/dev/null <<Q
apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {name: sweep-q}
spec:
  guaranteed: {cpu: 1500m, memory: 8Gi, nvidia.com/gpu: 0}
  borrowingLimit: {cpu: "0", memory: "0", nvidia.com/gpu: 0}
  namespaces: [$NS]
Q
defer "kubectl delete queue sweep-q --ignore-not-found >/dev/null 2>&1"
start_operator sweep-a

kubectl apply -f - >/dev/null <<S
apiVersion: tandem.dev/v1alpha1
kind: Sweep
metadata: {name: hp, namespace: $NS}
spec:
  template:
    metadata: {labels: {team: vision}}
    spec:
      queue: sweep-q
      workers: {count: 1}
      trainer: {resources: {requests: {cpu: "1", memory: 2Gi}}}
      pserver: {resources: {requests: {cpu: 500m, memory: 1Gi}}}
      passes: 2
      model: {inputs: [{name: image, source: features, shape: [1, 28, 28]}, {name: label, source: labels}], layers: [{name: fc1, type: fc, input: image, size: 10}, {name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}]}
      data: {train: {format: idx}, test: {format: idx}, batchSize: 64}
      optimizer: {type: sgd, learningRate: 0.1}
  parameters: [{name: lr, path: spec.optimizer.learningRate, type: float, min: 0.01, max: 0.5, scale: log}]
  algorithm: {name: random}
  earlyStopping: {policy: asha, reductionFactor: 2}
  parallelism: 2
  maxTrials: 2
S
trial_phase() { tj "$NS" "$1" .status.phase; }
eventually 120 bash -c "kubectl -n $NS get tj hp-0 hp-1 >/dev/null 2>&1" || { tail -n 30 "$WORK/operator-sweep-a.log"; fail "no trials"; }
owner="$(tj "$NS" hp-0 '.metadata.ownerReferences[0].kind')"
[[ "$owner" == Sweep ]] || fail "trial hp-0 owned by '$owner', not the Sweep"
[[ "$(tj "$NS" hp-0 .spec.queue)" == sweep-q ]] || fail "trial not in the template's queue"
pass "two trial TrainingJobs, owned by the Sweep, in its queue"

one_admitted() {
  local a b; a="$(trial_phase hp-0)"; b="$(trial_phase hp-1)"
  [[ ("$a" == Running || "$a" == Admitted) && "$b" == Queued ]] || [[ ("$b" == Running || "$b" == Admitted) && "$a" == Queued ]]
}
eventually 120 one_admitted || fail "expected one trial admitted and one Queued: $(trial_phase hp-0) $(trial_phase hp-1)"
pass "the queue admits one trial; the other waits Queued"
out="$(kubectl -n "$NS" get sw hp)"
echo "$out"
head -n1 <<<"$out" | grep -qE '^NAME +PHASE +RUNNING +SUCCEEDED +STOPPED +PAUSED +BEST +BEST-TRIAL +AGE$' || fail "printer columns: $out"
sed -n 2p <<<"$out" | grep -qE '^hp +Running ' || fail "printer row: $out"
pass "kubectl get sw shows the printer columns"

finish() {  # the kubelet's part: every pod of trial $1 Succeeded
  local p
  for p in $(kubectl -n "$NS" get pods -l "tandem.dev/job=$1" -o jsonpath='{.items[*].metadata.name}'); do
    kubectl -n "$NS" patch pod "$p" --subresource=status --type=merge -p \
      '{"status":{"phase":"Succeeded","containerStatuses":[{"name":"trainer","ready":false,"restartCount":0,"image":"tandem/tandem:0.1.0","imageID":"","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}' >/dev/null
  done
}
first=hp-0 second=hp-1
[[ "$(trial_phase hp-0)" == Queued ]] && first=hp-1 second=hp-0
for t in "$first" "$second"; do
  eventually 120 bash -c "[[ -n \$(kubectl -n $NS get pods -l tandem.dev/job=$t -o name) ]]" || fail "no pod for $t"
  finish "$t"
  eventually 60 phase_is "$NS" "$t" Succeeded || fail "trial $t not Succeeded"
done
pass "both trials ran one after the other and succeeded"
eventually 60 bash -c "[[ \$(kubectl -n $NS get sw hp -o jsonpath='{.status.phase}') == Failed ]]" || fail "sweep not finished"
reason="$(kubectl -n "$NS" get sw hp -o jsonpath='{.status.conditions[?(@.type=="Failed")].reason}')"
[[ "$reason" == NoObjective ]] || fail "sweep Failed with reason '$reason', not NoObjective"
[[ "$(kubectl -n "$NS" get sw hp -o jsonpath='{.status.trialsByPhase.succeeded}')" == 2 ]] || fail "trialsByPhase"
grep -qE 'TrialCreated' <<<"$(kubectl -n "$NS" describe sw hp)" || fail "no TrialCreated event"
pass "the sweep ended (no trial reported a value on kwok: NoObjective), with its events"

kubectl -n "$NS" delete sw hp --wait=false >/dev/null
eventually 120 bash -c "[[ -z \$(kubectl -n $NS get tj -o name) ]]" || fail "trials survived the sweep's deletion"
pass "deleting the Sweep removed its trials (garbage collector)"

forbidden_calls || fail "the operator made calls RBAC forbids"
pass "no forbidden call"
