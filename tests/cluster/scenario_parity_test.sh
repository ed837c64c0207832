#!/usr/bin/env bash
# Keeps the stand-in honest: tests/cluster/job_scenario.py runs one TrainingJob scenario (admit,
# workers and children, printer columns, events, a worker failure restarting the gang,
# suspend/resume, preemption, TTL, delete cascade) against tandem-fake-apiserver and against this
# real control plane; a difference in what the two runs observe fails, as does a missed
# expectation. On the real side the operator runs as its ServiceAccount and may make no call RBAC
# forbids.
source "$(dirname "$0")/lib.sh"
[[ -x "$TANDEM_BIN_DIR/tandem-fake-apiserver" ]] || fail "no $TANDEM_BIN_DIR/tandem-fake-apiserver (build it)"
[[ -x "$TANDEM_BIN_DIR/tandem-operator" ]] || fail "no $TANDEM_BIN_DIR/tandem-operator (build it)"
operator_kubeconfig "$WORK/operator.kubeconfig"
python3 "$SRC/tests/cluster/job_scenario.py" --backend both --bin-dir "$TANDEM_BIN_DIR" --source-dir "$SRC" \
  --state "$TANDEM_CLUSTER_STATE" --operator-kubeconfig "$WORK/operator.kubeconfig" --work "$WORK" \
  || fail "the scenario failed or the two API servers disagree (outcomes and operator logs in $WORK)"
forbidden_calls || fail "the operator made calls RBAC forbids"
pass "same outcome on the stand-in and the real control plane"
