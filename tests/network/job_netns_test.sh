#!/usr/bin/env bash
# A whole job across hosts on real network namespaces (netns.sh): `tandem run --placement` starts
# each worker's trainer and pserver on its host (`ip netns exec`), so the supervisor, the worker
# contract, the consistent checkpoint and the lost-steps report under test are the product's.
# Faults are injected in the middle of training, and each scenario asserts what the job does:
#   link cut      (2 hosts x 1 worker, then 2 x 2 with the hierarchical all-reduce)
#                 every trainer exits 75 (ring peer failure) within the bound below, the
#                 supervisor restarts them, the job completes from the consistent checkpoint, and
#                 lost_steps is exactly the steps done since the last checkpoint before the cut
#   pserver host  partitioned briefly: no restart, nothing lost; held past the client's reconnect
#                 timeout: every trainer exits 75, restarts once it is back, completes
#   straggler     one host behind a 20 Mbit/s link: the job completes, nothing restarts
# Every `tandem run` runs under `timeout`, far above every bound: reaching it is a hang. Times
# are printed; the bounds asserted are the documented timeouts plus a generous allowance for
# this loaded machine. Usage: job_netns_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=netns.sh
source "$here/netns.sh"

fail() {
  echo "FAIL: $*" >&2
  [[ -n "${out:-}" ]] && echo "logs kept in $out" >&2 && keep=1
  exit 1
}
keep=0
[[ $(id -u) -eq 0 ]] || fail "needs root to create network namespaces"
for tool in ip tc iptables numfmt timeout od python3; do command -v $tool >/dev/null || fail "$tool is missing (scripts/install-deps.sh)"; done
for b in tandem tandem-trainer tandem-pserver; do [[ -x "$bin/$b" ]] || fail "$bin/$b is not built"; done
out=$(mktemp -d)
job_pid=""
cleanup() {
  # A job still running (a failed assertion): SIGTERM reaches tandem through `timeout`, and its
  # workers die with it (PR_SET_PDEATHSIG); then the namespaces can go.
  if [[ -n "$job_pid" ]] && kill -0 "$job_pid" 2>/dev/null; then
    kill -TERM "$job_pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$job_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$job_pid" 2>/dev/null
  fi
  netns_destroy
  ((keep)) || rm -rf "$out"
}
trap cleanup EXIT
netns_create 3 || fail "cannot create network namespaces and veth pairs"
for h in 0 1 2; do netns_shape $h 1gbit || fail "tc tbf 1gbit"; done

PEER_TIMEOUT_S=3       # TANDEM_COLLECTIVE_TIMEOUT_S: a silent ring neighbour is failed after this
GRACE_S=2              # the trainer's peer-failure watchdog (trainer/engine/peer_failure_watchdog.h)
RPC_TIMEOUT_S=2        # TANDEM_PSERVER_RPC_TIMEOUT_S: one attempt of a pserver RPC
RECONNECT_TIMEOUT_S=4  # TANDEM_PSERVER_RECONNECT_TIMEOUT_S: retries of an unreachable shard
SLACK_S=10             # this 2-core machine runs other builds: scheduling delays of seconds
HANG_LIMIT_S=240       # a whole run; far above everything: reaching it is a hang
INTERVAL=40            # spec.checkpoint.intervalSteps

# 2 workers x 60,000 examples of batch 128: 469 steps per trainer (a few seconds unshaped).
cat >"$out/job.yaml" <<EOF
apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: ctr-netns, namespace: default}
spec:
  queue: default
  image: tandem/tandem:0.1.0
  workers: {count: 2}
  trainer: {threads: 1}
  passes: 1
  data:
    train: {format: synthetic-ctr, examples: 120000, numFields: 26, zipf: 1.2, seed: 5}
    test: {format: synthetic-ctr, examples: 2000, numFields: 26, zipf: 1.2, seed: 5}
    batchSize: 128
  model:
    inputs:
      - {name: ids, source: fields, shape: [26]}
      - {name: click, source: targets}
    layers:
      - {name: emb, type: embedding, input: ids, vocabSize: 1451594, size: 8, pooling: sum}
      - {name: fc1, type: fc, input: emb, size: 32}
      - {name: relu1, type: relu, input: fc1}
      - {name: logit, type: fc, input: relu1, size: 1}
      - {name: cost, type: binary_cross_entropy, inputs: [logit, click]}
  optimizer: {type: adagrad, learningRate: 0.05}
  sync: {dense: ring, mode: sync}
  checkpoint: {intervalSteps: $INTERVAL, keep: 3}
  restartPolicy: {backoffLimit: 4, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
EOF

# placement FILE PSERVER_HOSTS: workers on hosts 0 and 1, pservers on the hosts given ("0 1").
placement() {
  local file=$1 ps=($2)
  {
    echo "hosts:"
    for h in 0 1 2; do echo "  - {name: host$h, address: $(netns_addr $h), exec: [ip, netns, exec, $(netns_name $h)]}"; done
    echo "workers: [host0, host1]"
    echo "pservers: [host${ps[0]}, host${ps[1]}]"
  } >"$file"
}

# start_job NAME PLACEMENT [FLAGS...]: `tandem run` in the background; sets job_pid, run_dir.
start_job() {
  local name=$1 place=$2
  shift 2
  run_dir="$out/$name"
  env TANDEM_COLLECTIVE_TIMEOUT_S=$PEER_TIMEOUT_S TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S=60 \
    TANDEM_PSERVER_RPC_TIMEOUT_S=$RPC_TIMEOUT_S TANDEM_PSERVER_RECONNECT_TIMEOUT_S=$RECONNECT_TIMEOUT_S \
    OMP_WAIT_POLICY=passive \
    timeout -s KILL $HANG_LIMIT_S "$bin/tandem" run "$out/job.yaml" --placement "$place" \
    --run-dir "$run_dir" --grace 10 "$@" >"$out/$name.out" 2>&1 &
  job_pid=$!
}

# The step worker RANK's trainer last finished (its step journal), 0 before the first.
steps_done() {
  local f="$run_dir/checkpoints/trainer-$1/last-step"
  [[ -s "$f" ]] && od -An -t d8 "$f" | tr -d ' ' || echo 0
}
has_checkpoint() { compgen -G "$run_dir/checkpoints/trainer-$1/*.ckpt" >/dev/null; }

# Waits (bounded) until both trainers have a checkpoint and rank 0 is 10-25 steps past a
# checkpoint step at least 2 intervals in: the fault then usually lands between two checkpoints
# (steps take ~10 ms, and starting `ip` under load takes up to ~200 ms).
wait_mid_interval() {
  local deadline=$((SECONDS + 120)) s
  while ((SECONDS < deadline)); do
    kill -0 $job_pid 2>/dev/null || fail "$1: the job ended before the fault ($(tail -3 "$out/$1.out"))"
    s=$(steps_done 0)
    if has_checkpoint 0 && has_checkpoint 1 && ((s >= 2 * INTERVAL && s % INTERVAL >= 10 && s % INTERVAL <= 25)); then
      return 0
    fi
    sleep 0.02
  done
  fail "$1: training did not reach the fault point within 120 s (step $(steps_done 0))"
}

# Supervisor events of the run: "<time> <message>", one per line.
events() {
  python3 - "$run_dir/metrics.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "supervisor":
        print("%.3f %s" % (e["time"], e["message"]))
    elif e.get("event") == "resumed":
        print("%.3f resumed worker %s step %s lostSteps %s" % (e["time"], e.get("worker"), e["step"], e["lostSteps"]))
EOF
}
# The time of the first event matching REGEX after time T0, or "" when there is none.
event_time() { events | awk -v t0="$2" -v re="$1" '$1 >= t0 && $0 ~ re { print $1; exit }'; }

finish_job() {
  local name=$1
  wait $job_pid
  code=$?
  [[ $code == 137 ]] && { tail -20 "$out/$name.out" >&2; fail "$name: tandem run hung (killed after ${HANG_LIMIT_S}s)"; }
  summary=$(grep -E 'lost_steps=.*workers=' "$out/$name.out" | tail -1)
}
summary_value() { sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" <<<"$summary" | head -1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# check_resume NAME AT_CUT T0: the job resumed from the consistent checkpoint the fault implies
# and reported exactly the steps lost. The consistent checkpoint is the last checkpoint step at or
# below AT_CUT (the step rank 0 had finished when the fault struck), or, when AT_CUT is itself a
# checkpoint step whose files were not all written when the fault struck, the one before; the
# steps lost are AT_CUT minus it. Sets resumed, lost.
check_resume() {
  local name=$1 at_cut=$2 t0=$3
  resumed=$(events | awk -v t0="$t0" '$1 >= t0 && $2 == "resumed" { print $6; exit }')
  lost=$(summary_value lost_steps)
  [[ -n "$resumed" && -n "$lost" ]] || { events >&2; fail "$name: no resumed event or lost_steps ($summary)"; }
  local want_resumed=$((at_cut / INTERVAL * INTERVAL))
  if ((resumed != want_resumed)) && ! ((at_cut % INTERVAL == 0 && resumed == want_resumed - INTERVAL)); then
    fail "$name: resumed at step $resumed, want $want_resumed (the last checkpoint at or before step $at_cut)"
  fi
  ((lost == at_cut - resumed)) || fail "$name: lost_steps=$lost, want $((at_cut - resumed)) (step $at_cut at the fault - checkpoint step $resumed)"
}

# 1. A link cut in the middle of training: host 1's eth0 goes down (its trainers and pservers are
#    cut off). Every trainer must exit 75 within the ring's peer timeout plus the watchdog's grace
#    (+ slack); the link comes back once they have; the job completes from the consistent
#    checkpoint and reports exactly the steps lost.
# cut_scenario NAME PLACEMENT WORKERS [tandem run flags...]; sets cut_line.
cut_scenario() {
  local name=$1 place=$2 w=$3
  shift 3
  start_job "$name" "$place" "$@"
  wait_mid_interval "$name"
  local t0 at_cut bound deadline s r t_up e d times="" resumed lost restarts
  local -a ev
  t0=$(now)
  netns_link 1 down
  at_cut=$(steps_done 0)
  bound=$((PEER_TIMEOUT_S + GRACE_S + SLACK_S))
  deadline=$((SECONDS + bound + 30))
  while ((SECONDS < deadline)); do
    local all=1
    for ((r = 0; r < w; r++)); do
      ev[$r]=$(event_time "worker-$r/trainer exited with code" "$t0")
      [[ -n "${ev[$r]}" ]] || all=0
    done
    ((all)) && break
    s=$(steps_done 0)
    ((s > at_cut)) && at_cut=$s   # the step rank 0 had finished when the ring failed
    sleep 0.05
  done
  netns_link 1 up
  t_up=$(now)
  for ((r = 0; r < w; r++)); do
    [[ -n "${ev[$r]}" ]] || { events >&2; fail "$name: worker-$r/trainer did not exit within $((bound + 30)) s of the link cut (hang)"; }
    events | awk -v t0="$t0" -v r=$r '$1 >= t0 && $0 ~ "worker-" r "/trainer exited with code" { print; exit }' | grep -q 'code 75' ||
      { events >&2; fail "$name: worker-$r/trainer did not exit with 75 after the cut"; }
    d=$(elapsed "$t0" "${ev[$r]}")
    times+="${times:+, }$d"
    awk -v a="$d" -v l=$bound 'BEGIN { exit !(a <= l) }' ||
      fail "$name: worker-$r/trainer exited 75 after $d s, above peer timeout + grace + slack = $bound s"
  done
  finish_job "$name"
  [[ $code == 0 ]] || { tail -20 "$out/$name.out" >&2; fail "$name: tandem run exited $code, want 0 (completion after restart)"; }
  check_resume "$name" "$at_cut" "$t0"
  restarts=$(summary_value restarts)
  ((restarts >= w)) || fail "$name: restarts=$restarts, want all $w trainers restarted"
  grep -q 'pserver exited' <(events) && fail "$name: a pserver restarted; only the trainers should"
  cut_line="link cut at step $at_cut: $w trainers exited 75 after $times s (bound $bound s), link back after $(elapsed "$t0" "$t_up") s; resumed at checkpoint step $resumed, lost_steps=$lost, restarts=$restarts; job completed (summary: $summary)"
}
placement "$out/colocated.yaml" "0 1"
cut_scenario cut "$out/colocated.yaml" 2
grep -q 'all-reduce uses TCP' "$run_dir/logs/worker-0-trainer.log" ||
  fail "cut: the trainers on two hosts did not all-reduce over TCP (TANDEM_HOST ignored?)"
cut_result="$(summary_value test_loss) $(summary_value test_auc)"
echo "$cut_line"

# 1b. The same with two workers per host (4 workers): the trainers all-reduce hierarchically
#     (shared memory inside each host, TCP across: docs/collective.md), and a cut link must end
#     all four, wherever they wait, and the job complete from the checkpoint all the same.
{
  for h in 0 1; do echo "  - {name: host$h, address: $(netns_addr $h), exec: [ip, netns, exec, $(netns_name $h)]}"; done
  echo "workers: [host0, host0, host1, host1]"
} | sed '1i hosts:' >"$out/two-per-host.yaml"
cut_scenario hier "$out/two-per-host.yaml" 4 --workers 4
grep -q 'hierarchical all-reduce: 2 hosts x 2 ranks' "$run_dir/logs/worker-0-trainer.log" ||
  fail "hier: the 4 trainers on 2 hosts did not use the hierarchical all-reduce"
echo "hierarchical (2 hosts x 2 workers), $cut_line"

# 2a. The host of pserver shard 1 (host 2, nothing else on it) partitioned for 1 s, well under the
#     RPC timeout: TCP retransmits, the trainers' RPCs complete; nothing restarts, nothing is lost.
placement "$out/pserver-apart.yaml" "0 2"
start_job blip "$out/pserver-apart.yaml"
wait_mid_interval blip
netns_partition 2 on
sleep 1
netns_partition 2 off
finish_job blip
[[ $code == 0 ]] || { tail -20 "$out/blip.out" >&2; fail "blip: tandem run exited $code, want 0"; }
[[ $(summary_value restarts) == 0 && $(summary_value lost_steps) == 0 ]] ||
  { events >&2; fail "blip: a 1 s partition of the pserver host restarted something ($summary)"; }
clean_result="$(summary_value test_loss) $(summary_value test_auc)"
echo "pserver host partitioned 1 s: no restart, nothing lost (summary: $summary)"

# 2b. The same host partitioned and held: every trainer waits on shard 1 for the client's
#     reconnect timeout (after an attempt of up to RPC_TIMEOUT_S) and exits 75; the partition is
#     lifted once both have; the restarted trainers roll the shards back to the consistent
#     checkpoint and the job completes.
start_job held "$out/pserver-apart.yaml"
wait_mid_interval held
t0=$(now)
netns_partition 2 on
at_cut=$(steps_done 0)
bound=$((2 * RPC_TIMEOUT_S + RECONNECT_TIMEOUT_S + PEER_TIMEOUT_S + GRACE_S + SLACK_S))
deadline=$((SECONDS + bound + 30))
while ((SECONDS < deadline)); do
  e0=$(event_time 'worker-0/trainer exited with code 75' "$t0")
  e1=$(event_time 'worker-1/trainer exited with code 75' "$t0")
  [[ -n "$e0" && -n "$e1" ]] && break
  s=$(steps_done 0)
  ((s > at_cut)) && at_cut=$s
  sleep 0.05
done
netns_partition 2 off
t_up=$(now)
[[ -n "$e0" && -n "$e1" ]] || { events >&2; fail "held: the trainers did not both exit 75 within $((bound + 30)) s of the partition"; }
d0=$(elapsed "$t0" "$e0"); d1=$(elapsed "$t0" "$e1")
awk -v a="$d0" -v b="$d1" -v l=$bound 'BEGIN { exit !(a <= l && b <= l) }' ||
  fail "held: trainers exited 75 after $d0 s and $d1 s, above the bound of $bound s"
finish_job held
[[ $code == 0 ]] || { tail -20 "$out/held.out" >&2; fail "held: tandem run exited $code, want 0 (completion after the partition)"; }
check_resume held "$at_cut" "$t0"
held_result="$(summary_value test_loss) $(summary_value test_auc)"
echo "pserver host partitioned and held at step $at_cut: trainers exited 75 after $d0 s and $d1 s (bound $bound s), partition lifted after $(elapsed "$t0" "$t_up") s; resumed at checkpoint step $resumed, lost_steps=$lost; job completed (summary: $summary)"

# 3. A straggler: host 1 (trainer 1 and pserver 1) behind a 20 Mbit/s link. The job runs at its
#    pace and completes; slowness is not silence, so nothing fails or restarts.
netns_shape 1 20mbit
start_job straggler "$out/colocated.yaml"
t0=$(now)
finish_job straggler
netns_shape 1 1gbit
[[ $code == 0 ]] || { tail -20 "$out/straggler.out" >&2; fail "straggler: tandem run exited $code, want 0"; }
[[ $(summary_value restarts) == 0 ]] || { events >&2; fail "straggler: something restarted ($summary)"; }
echo "straggler (host 1 at 20 Mbit/s): completed in $(elapsed "$t0" "$(now)") s with no restart (summary: $summary)"

# The restarts resumed the same computation: a consistent cut (trainers and shards at one step)
# replays the lost steps exactly, so the restarted runs end with the uninterrupted runs' test loss
# and AUC (sync mode, one thread, fixed seeds; tests/trainer/ps/consistent_restart_test.cc
# compares the weights themselves over loopback).
straggler_result="$(summary_value test_loss) $(summary_value test_auc)"
[[ "$straggler_result" == "$clean_result" ]] || fail "two uninterrupted runs differ: $clean_result vs $straggler_result"
[[ "$cut_result" == "$clean_result" ]] || fail "link cut: test loss and AUC $cut_result, uninterrupted $clean_result"
[[ "$held_result" == "$clean_result" ]] || fail "held partition: test loss and AUC $held_result, uninterrupted $clean_result"
echo "restarted runs end where the uninterrupted ones do: test_loss test_auc = $clean_result"
echo PASS
