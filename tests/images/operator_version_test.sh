#!/usr/bin/env bash
# The operator image starts as its non-root user on a read-only root and answers --version with
# the project's version.
source "$(dirname "$0")/lib.sh"
img=$(image_tag operator)
out=$("${PODMAN[@]}" "${RUN_SAFE[@]}" --rm --network none "$img" --version 2>&1) ||
  fail "$img --version exited non-zero: $out"
[[ $out == "tandem-operator $TANDEM_VERSION" ]] || fail "$img --version printed '$out', want 'tandem-operator $TANDEM_VERSION'"
pass "$img --version: $out"
# And a bad flag is a usage error, not a crash.
set +e
"${PODMAN[@]}" "${RUN_SAFE[@]}" --rm --network none "$img" --no-such-flag >"$WORK/bad.txt" 2>&1
rc=$?
set -e
((rc == 2)) || fail "$img --no-such-flag exited $rc (want 2): $(cat "$WORK/bad.txt")"
pass "$img --no-such-flag: exit 2"
