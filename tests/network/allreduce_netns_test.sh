#!/usr/bin/env bash
# The ring all-reduce between hosts on real network namespaces (netns.sh): bus bandwidth on links
# shaped to 1 Gbit/s and 10 Gbit/s, and the faults a real network brings. Each scenario asserts
# what every rank does (its exit code: 0 done, 75 a peer failed - restart from the checkpoint) and
# that none hangs (each rank runs under `timeout`, far above the collective's failure bound);
# bandwidths and times are printed, never asserted. The last part runs the hierarchical path
# (shared memory inside a host, TCP across hosts) against the flat ring on 2 hosts x 2 ranks.
# Usage: allreduce_netns_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: $0 BIN_DIR}/tandem-allreduce-bench
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=netns.sh
source "$here/netns.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || fail "needs root to create network namespaces"
for tool in ip tc iptables numfmt timeout; do command -v $tool >/dev/null || fail "$tool is missing (scripts/install-deps.sh)"; done
[[ -x "$bin" ]] || fail "$bin is not built"
trap netns_destroy EXIT
netns_create 3 || fail "cannot create network namespaces and veth pairs"

out=$(mktemp -d)
PEER_TIMEOUT_S=3   # TANDEM_COLLECTIVE_TIMEOUT_S: a silent neighbour is failed after this
HANG_LIMIT_S=120   # far above every bound below: reaching it is a hang

# run_ranks NAME N ARGS...: starts ranks 0..N-1 on hosts 0..N-1 and waits for all; sets codes[].
run_ranks() {
  local name=$1 n=$2
  shift 2
  local peers="" pids=()
  for ((r = 0; r < n; r++)); do peers+="${peers:+,}$(netns_addr $r):29400"; done
  for ((r = 0; r < n; r++)); do
    netns_exec $r env TANDEM_PEERS="$peers" TANDEM_RANK=$r TANDEM_WORLD_SIZE=$n \
      TANDEM_COLLECTIVE_SHM=0 TANDEM_COLLECTIVE_TIMEOUT_S=$PEER_TIMEOUT_S \
      TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S=30 \
      timeout -s KILL $HANG_LIMIT_S "$bin" "$@" >"$out/$name.$r.out" 2>"$out/$name.$r.err" &
    pids+=($!)
  done
  codes=()
  for ((r = 0; r < n; r++)); do
    wait "${pids[$r]}"
    codes[$r]=$?
  done
}

expect_codes() {
  local name=$1
  shift
  local want=("$@")
  for r in "${!want[@]}"; do
    if [[ "${codes[$r]}" != "${want[$r]}" ]]; then
      echo "--- $name rank $r stderr:" >&2
      tail -5 "$out/$name.$r.err" >&2
      [[ "${codes[$r]}" == 137 ]] && fail "$name: rank $r hung (killed after ${HANG_LIMIT_S}s)"
      fail "$name: rank $r exited ${codes[$r]}, want ${want[$r]}"
    fi
  done
}

busbw() { sed -n 's/.*"bytes":\([0-9]*\).*"busbw":\([0-9.e+]*\).*/\1 \2/p' "$1"; }

# 1. Bus bandwidth across hosts, shaped and not, against the link's limit (busbw of a ring is
#    bounded by one link's one-way rate).
for rate in 1gbit 10gbit off; do
  for h in 0 1; do netns_shape $h $rate || fail "tc tbf $rate"; done
  start=$(date +%s.%N)
  run_ranks bw-$rate 2 --sizes-mib 16,64 --iters 3 --warmup 1 --verify
  expect_codes bw-$rate 0 0
  while read -r bytes bw; do
    limit=""
    [[ $rate != off ]] && limit=$(netns_rate_bits $rate)
    if [[ -n "$limit" ]]; then
      awk -v r=$rate -v b=$bytes -v bw=$bw -v l=$limit 'BEGIN { printf "busbw %s link, %d MiB: %.3g GB/s = %.0f%% of the link (%.3g GB/s)\n", r, b/1048576, bw/1e9, 100*bw/(l/8), l/8e9 }'
    else
      awk -v b=$bytes -v bw=$bw 'BEGIN { printf "busbw unshaped veth, %d MiB: %.3g GB/s\n", b/1048576, bw/1e9 }'
    fi
  done < <(busbw "$out/bw-$rate.0.out")
done
for h in 0 1 2; do netns_shape $h 1gbit; done

# 2. A link cut in the middle of an all-reduce: both ranks fail with 75 (peer failure: restart
#    from the checkpoint) within about PEER_TIMEOUT_S, no hang.
( sleep 4; date +%s.%N >"$out/t0"; netns_link 1 down ) &
run_ranks cut 2 --sizes-mib 64 --iters 1000 --warmup 0
t1=$(date +%s.%N)
wait
t0=$(cat "$out/t0")
netns_link 1 up
expect_codes cut 75 75
echo "link cut mid all-reduce: both ranks exited 75 $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}') s after the cut (peer timeout ${PEER_TIMEOUT_S} s); rank 0: $(tail -1 "$out/cut.0.err" | cut -c1-160)"

# 3. A host partitioned away for less than the peer timeout and back: TCP retransmits, the ring
#    resumes, both ranks finish. Then partitioned for longer: both fail with 75.
( sleep 3; netns_partition 1 on; sleep 1; netns_partition 1 off ) &
run_ranks blip 2 --sizes-mib 16 --iters 40 --warmup 0 --verify
wait
expect_codes blip 0 0
echo "partition of 1 s (< peer timeout): both ranks finished (exit 0)"

( sleep 3; date +%s.%N >"$out/t0"; netns_partition 1 on ) &
run_ranks part 2 --sizes-mib 16 --iters 1000 --warmup 0
t1=$(date +%s.%N)
wait
t0=$(cat "$out/t0")
netns_partition 1 off
expect_codes part 75 75
echo "partition held: both ranks exited 75 $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}') s after it began"

# 4. A straggler: three hosts, one behind a 100 Mbit/s link. The ring runs at the slowest link's
#    pace and finishes (the peer timeout is about silence, not slowness).
netns_shape 2 100mbit
run_ranks straggler 3 --sizes-mib 16 --iters 2 --warmup 0 --verify
expect_codes straggler 0 0 0
echo "straggler (one host at 100 Mbit/s, two at 1 Gbit/s): all 3 ranks finished; $(busbw "$out/straggler.0.out" | awk '{printf "busbw %.3g MB/s (the slow link carries at most 12.5 MB/s)", $2/1e6}')"

# 5. 1% loss on one host's input: TCP recovers, the sums are right.
netns_shape 2 1gbit
netns_loss 1 0.01
run_ranks loss 2 --sizes-mib 16 --iters 3 --warmup 0 --verify
expect_codes loss 0 0
netns_loss 1 0
echo "1% packet loss: both ranks finished with verified sums; $(busbw "$out/loss.0.out" | awk '{printf "busbw %.3g MB/s", $2/1e6}')"
# 6. The hierarchical path: 2 hosts x 2 ranks, each rank told its host (TANDEM_HOST, as
#    `tandem run --placement` and the operator set it). With shared memory on, the ranks of a host
#    share a segment and the hosts are joined by TCP rings ("hierarchical"); with it off, the
#    same four ranks form the flat TCP ring, which crosses the host link twice per direction.
#    Per all-reduce of S bytes a host sends S (hierarchical: 2(H-1)/H*S, H = 2) or 1.5 S (flat:
#    2(N-1)/N*S, N = 4) over its link, so on a link of B bytes/s algbw = S/t is at most B
#    (hierarchical) or B/1.5 (flat). Both runs verify their sums; bandwidths are printed.
# run_placed NAME SHM HOST... : rank r on host HOST[r] (ports 29400 + its index on the host).
run_placed() {
  local name=$1 shm=$2
  shift 2
  local hosts=("$@") n=$#
  local peers="" pids=() local_index=()
  declare -A seen=()
  for ((r = 0; r < n; r++)); do
    local h=${hosts[$r]}
    local_index[$r]=${seen[$h]:-0}
    seen[$h]=$((local_index[$r] + 1))
    peers+="${peers:+,}$(netns_addr "$h"):$((29400 + local_index[$r]))"
  done
  for ((r = 0; r < n; r++)); do
    netns_exec "${hosts[$r]}" env TANDEM_PEERS="$peers" TANDEM_RANK=$r TANDEM_WORLD_SIZE=$n \
      TANDEM_HOST="host${hosts[$r]}" TANDEM_COLLECTIVE_SHM=$shm TANDEM_COLLECTIVE_TIMEOUT_S=$PEER_TIMEOUT_S \
      TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S=30 \
      timeout -s KILL $HANG_LIMIT_S "$bin" --sizes-mib 16,64 --iters 3 --warmup 1 --verify \
      >"$out/$name.$r.out" 2>"$out/$name.$r.err" &
    pids+=($!)
  done
  codes=()
  for ((r = 0; r < n; r++)); do
    wait "${pids[$r]}"
    codes[$r]=$?
  done
}
wire_of() { sed -n 's/.*"transport":"\([a-z]*\)".*/\1/p' "$1" | head -1; }
algbw() { sed -n 's/.*"bytes":\([0-9]*\).*"seconds":\([0-9.e+-]*\),.*/\1 \2/p' "$1"; }
for rate in 1gbit 10gbit; do
  for h in 0 1; do netns_shape $h $rate || fail "tc tbf $rate"; done
  limit=$(netns_rate_bits $rate)
  for mode in hierarchical flat; do
    shm=1
    [[ $mode == flat ]] && shm=0
    run_placed $mode-$rate $shm 0 0 1 1
    expect_codes $mode-$rate 0 0 0 0
    want=tcp
    [[ $mode == hierarchical ]] && want=hierarchical
    got=$(wire_of "$out/$mode-$rate.0.out")
    [[ "$got" == "$want" ]] || fail "$mode, $rate: all-reduce ran over '$got', want '$want'"
    while read -r bytes sec; do
      awk -v m=$mode -v r=$rate -v b=$bytes -v t=$sec -v l=$limit 'BEGIN {
        per_host = (m == "hierarchical") ? 1.0 : 1.5; cap = l / 8 / per_host;
        printf "%s, 2 hosts x 2 ranks, %s links, %d MiB: algbw %.3g GB/s, busbw %.3g GB/s; %.0f%% of what the link allows this algorithm (%.3g GB/s algbw)\n",
               m, r, b / 1048576, b / t / 1e9, 1.5 * b / t / 1e9, 100 * (b / t) / cap, cap / 1e9 }'
    done < <(algbw "$out/$mode-$rate.0.out")
  done
done
for h in 0 1; do netns_shape $h 1gbit; done

rm -rf "$out"
echo PASS
