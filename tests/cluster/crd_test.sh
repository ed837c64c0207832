#!/usr/bin/env bash
# The CRDs on a real apiserver: accepted and Established; `kubectl explain` prints our descriptions;
# every example manifest is accepted (server-side dry run, strict field validation); every malformed
# manifest of tests/cli/manifests/bad gets the outcome recorded in apiserver_validation.tsv, where
# the apiserver's own schema validation refuses it with a field error, or accepts it (a rule only
# `tandem validate` has), or kubectl refuses it before it reaches the apiserver. `tandem validate`
# refuses every one of them, so the `accepted`/`client` rows are the differences docs/operator.md
# lists. A change in either validator changes a row and fails this test until the table is updated.
source "$(dirname "$0")/lib.sh"
apply_crds
pass "CRDs Established"

# kubectl explain: the description of spec.workers and of its fields, as crds/trainingjob.yaml says.
# (The apiserver publishes a new CRD's OpenAPI a few seconds after it is Established.)
eventually 60 kubectl explain trainingjob.spec.workers || fail "kubectl explain trainingjob.spec.workers"
kubectl explain trainingjob.spec.workers >"$WORK/explain.txt"
python3 - "$SRC/crds/trainingjob.yaml" "$WORK/explain.txt" <<'PY' || fail "kubectl explain trainingjob.spec.workers"
import sys, yaml
crd = yaml.safe_load(open(sys.argv[1]))
w = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["workers"]
text = " ".join(open(sys.argv[2]).read().split())
want = [w["description"]] + [f["description"] for f in w["properties"].values()]
missing = [d for d in want if " ".join(d.split()) not in text]
assert not missing, f"not in kubectl explain output: {missing}\n---\n{text}"
print(f"explain shows {len(want)} descriptions")
PY
pass "kubectl explain trainingjob.spec.workers prints the CRD's descriptions"

# Examples: accepted by the real validation.
for f in "$SRC"/examples/*.yaml "$SRC"/tests/cli/manifests/good/*.yaml; do
  out="$(kubectl create --dry-run=server --validate=strict -f "$f" 2>&1)" \
    || fail "$(basename "$f") refused by the apiserver: $out"
done
pass "examples and good manifests accepted (server-side dry run)"

# Malformed manifests: compare with the recorded outcome.
table="$(dirname "$0")/apiserver_validation.tsv"
: >"$WORK/actual.tsv"
errors=0
for f in "$SRC"/tests/cli/manifests/bad/*.yaml; do
  name="$(basename "$f" .yaml)"
  if out="$(kubectl create --dry-run=server --validate=strict -f "$f" 2>&1)"; then
    outcome=accepted
  elif grep -qE 'Error from server|is invalid|strict decoding error|unknown field' <<<"$out"; then
    outcome=refused
  else
    outcome=client
  fi
  msg="$(tr '\n\t' '  ' <<<"$out" | cut -c1-300)"
  printf '%s\t%s\t%s\n' "$name" "$outcome" "$msg" >>"$WORK/actual.tsv"
  row="$(awk -F'\t' -v n="$name" '$1 == n' "$table")"
  [[ -n "$row" ]] || { echo "no row for $name in $table (actual: $outcome: $msg)" >&2; errors=$((errors+1)); continue; }
  want="$(cut -f2 <<<"$row")"; frag="$(cut -f3 <<<"$row")"
  if [[ "$want" != "$outcome" ]]; then
    echo "$name: expected $want, got $outcome: $msg" >&2; errors=$((errors+1))
  elif [[ -n "$frag" ]] && ! grep -qF -- "$frag" <<<"$out"; then
    echo "$name: $outcome, but the message lacks '$frag': $msg" >&2; errors=$((errors+1))
  fi
done
awk -F'\t' '{n[$2]++} END {for (k in n) printf "%s=%d ", k, n[k]; print ""}' "$WORK/actual.tsv"
(( errors == 0 )) || { cp "$WORK/actual.tsv" "$TANDEM_BINARY_DIR/apiserver_validation.actual.tsv" 2>/dev/null || true; fail "$errors manifest outcomes differ from $table (actual in build/apiserver_validation.actual.tsv)"; }
# Every refused row must carry a field error (the fragment names the field).
pass "malformed manifests: outcomes match $table"

# tandem validate refuses all of them (its own test checks its messages): the accepted/client rows
# above are therefore exactly the differences between the two validators.
"$TANDEM_BIN_DIR/tandem" validate "$SRC"/tests/cli/manifests/bad/*.yaml >/dev/null 2>&1 && fail "tandem validate accepted a bad manifest"
pass "tandem validate refuses them all"
