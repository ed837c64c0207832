#!/usr/bin/env bash
# Two workers of examples/fashion-mnist.yaml in containers of the trainer image, as the operator
# lays them out in pods: each worker is a pserver container with its own address on a private
# podman network, and a trainer container sharing that network namespace (the pod's). They find
# each other by DNS name (aardvark-dns), train a bounded number of steps over the TCP ring, and
# both ranks must report the same test accuracy and loss. Fashion-MNIST (Debian's
# dataset-fashion-mnist) and the manifest are mounted read-only; the roots are read-only too.
source "$(dirname "$0")/lib.sh"
img=$(image_tag trainer)
data=/usr/share/datasets/fashion-mnist
[[ -f $data/train-images-idx3-ubyte.gz ]] || fail "$data has no Fashion-MNIST (apt-get install dataset-fashion-mnist)"
steps=${TANDEM_IMAGES_SMOKE_STEPS:-60}

# The test's own network; the subnet is private and explicit, nothing leaves it.
net=tandem-images-smoke
subnet=10.89.77.0/24
prefix=tandem-smoke
cleanup() {
  local c
  for c in $prefix-w0-trainer $prefix-w1-trainer $prefix-w0 $prefix-w1; do
    "${PODMAN[@]}" rm -f -t 2 "$c" >/dev/null 2>&1 || true
  done
  "${PODMAN[@]}" network rm -f "$net" >/dev/null 2>&1 || true
}
cleanup
defer cleanup
"${PODMAN[@]}" network create --subnet "$subnet" --gateway 10.89.77.1 "$net" >/dev/null ||
  fail "podman network create --subnet $subnet failed"

token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
cp "$TANDEM_SOURCE_DIR/examples/fashion-mnist.yaml" "$WORK/job.yaml"
chmod 0644 "$WORK/job.yaml"
common_env=(-e TANDEM_JOB_NAME=fashion-mnist -e TANDEM_WORLD_SIZE=2
            -e TANDEM_PEERS=w0:7000,w1:7000 -e TANDEM_PSERVERS=w0:7100,w1:7100
            -e TANDEM_JOB_TOKEN="$token" -e TANDEM_THREADS=1 -e OMP_NUM_THREADS=1)
# As the worker contract (api/worker_contract) starts them: the binary and the manifest, the rest
# in the environment; the pserver listens on its own entry of TANDEM_PSERVERS.
for r in 0 1; do
  "${PODMAN[@]}" "${RUN_SAFE[@]}" -d --name $prefix-w$r --hostname w$r \
    --network "$net" --ip 10.89.77.$((10 + r)) --network-alias w$r \
    -v "$WORK/job.yaml:/etc/tandem/job.yaml:ro" \
    "${common_env[@]}" -e TANDEM_RANK=$r -e TANDEM_METRICS_PORT=9101 \
    "$img" tandem-pserver /etc/tandem/job.yaml >/dev/null || fail "pserver w$r did not start"
done
for r in 0 1; do
  "${PODMAN[@]}" "${RUN_SAFE[@]}" -d --name $prefix-w$r-trainer --network container:$prefix-w$r \
    -v "$WORK/job.yaml:/etc/tandem/job.yaml:ro" -v "$data:$data:ro" \
    "${common_env[@]}" -e TANDEM_RANK=$r -e TANDEM_METRICS_PORT=9100 \
    "$img" tandem-trainer /etc/tandem/job.yaml --max-steps "$steps" --no-resume >/dev/null ||
    fail "trainer w$r did not start"
done

declare -A summary=()
for r in 0 1; do
  c=$prefix-w$r-trainer
  rc=$(timeout 900 "${PODMAN[@]}" wait "$c") || rc=timeout
  "${PODMAN[@]}" logs "$c" >"$WORK/trainer-$r.log" 2>&1 || true
  [[ $rc == 0 ]] || fail "trainer rank $r exited $rc; its log: $(tail -20 "$WORK/trainer-$r.log")"
  summary[$r]=$(grep -o 'test_accuracy=[0-9.]* test_loss=[0-9.]*' "$WORK/trainer-$r.log" | tail -1)
  [[ -n ${summary[$r]} ]] || fail "trainer rank $r printed no summary: $(tail -5 "$WORK/trainer-$r.log")"
  grep -q "all-reduce uses TCP" "$WORK/trainer-$r.log" ||
    fail "trainer rank $r did not all-reduce over TCP between the containers: $(grep -i collective "$WORK/trainer-$r.log" | tail -3)"
  "${PODMAN[@]}" inspect --format '{{.State.Running}}' $prefix-w$r | grep -q true ||
    fail "pserver w$r is not running after training: $("${PODMAN[@]}" logs $prefix-w$r 2>&1 | tail -5)"
done
pass "rank 0: ${summary[0]}; rank 1: ${summary[1]} after $steps steps"
[[ ${summary[0]} == "${summary[1]}" ]] || fail "the ranks disagree: rank 0 ${summary[0]}, rank 1 ${summary[1]}"
acc=${summary[0]#test_accuracy=}
acc=${acc%% *}
# 10 classes: chance is 0.1. A CNN that trained at all is far above it after $steps steps.
python3 -c "import sys; sys.exit(0 if float('$acc') > 0.5 else 1)" ||
  fail "test accuracy $acc after $steps steps: the model did not learn"
pass "both ranks agree, accuracy $acc; the containers had 10.89.77.10 and 10.89.77.11"
