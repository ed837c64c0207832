# Hosts on real network namespaces for the `network` tests (sourced, bash). Each host is a
# namespace with one interface eth0 (a veth whose peer sits on a bridge in a switch namespace) and
# the address 10.213.<net>.<i+1>/24, which exists only inside these namespaces. Needs root,
# iproute2 and iptables (scripts/install-deps.sh). This kernel has no sch_netem, so:
#   bandwidth: tbf on eth0 (egress) - netns_shape HOST RATE
#   loss:      iptables statistic match dropping packets on input - netns_loss HOST PROB
#   link cut:  eth0 down / up - netns_link HOST down|up
#   partition: iptables DROP of everything on input and output - netns_partition HOST on|off
#   latency:   not available without netem (docs/hardening.md)
#
#   netns_create 3        # hosts 0..2; netns_exec 1 CMD... runs CMD on host 1
#   trap netns_destroy EXIT

NETNS_TAG=${NETNS_TAG:-tdm$$}
NETNS_NET=${NETNS_NET:-$((($$ % 200) + 20))}
NETNS_HOSTS=0

netns_name() { echo "${NETNS_TAG}h$1"; }
netns_addr() { echo "10.213.${NETNS_NET}.$(($1 + 1))"; }
netns_exec() {
  local h=$1
  shift
  ip netns exec "$(netns_name "$h")" "$@"
}

netns_create() {
  local n=$1 sw="${NETNS_TAG}sw"
  ip netns add "$sw" || return 1
  ip -n "$sw" link add br0 type bridge || return 1
  ip -n "$sw" link set br0 up
  for ((i = 0; i < n; i++)); do
    local ns host_if sw_if
    ns=$(netns_name "$i")
    host_if="${NETNS_TAG}a$i"
    sw_if="${NETNS_TAG}b$i"
    ip netns add "$ns" || return 1
    ip link add "$host_if" type veth peer name "$sw_if" || return 1
    ip link set "$host_if" netns "$ns"
    ip link set "$sw_if" netns "$sw"
    ip -n "$ns" link set "$host_if" name eth0
    ip -n "$ns" addr add "$(netns_addr "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$sw" link set "$sw_if" master br0
    ip -n "$sw" link set "$sw_if" up
  done
  NETNS_HOSTS=$n
}

netns_destroy() {
  for ((i = 0; i < NETNS_HOSTS; i++)); do ip netns del "$(netns_name "$i")" 2>/dev/null; done
  ip netns del "${NETNS_TAG}sw" 2>/dev/null
  NETNS_HOSTS=0
}

# RATE like 1gbit or 10gbit; "off" removes the shaping. The bucket holds 4 ms at RATE (at least
# 64 KiB) and the queue 50 ms, so bulk TCP runs at RATE rather than at the bucket's whim.
netns_shape() {
  local h=$1 rate=$2
  netns_exec "$h" tc qdisc del dev eth0 root 2>/dev/null
  [[ "$rate" == off ]] && return 0
  local bits
  bits=$(netns_rate_bits "$rate")
  local burst=$((bits / 8 / 250))
  ((burst < 65536)) && burst=65536
  netns_exec "$h" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
}

# 1gbit -> 1000000000, 100mbit -> 100000000 (tc's decimal units).
netns_rate_bits() {
  local r=${1%bit}
  r=${r^^}
  numfmt --from=si "$r"
}

netns_link() { netns_exec "$1" ip link set eth0 "$2"; }

netns_partition() {
  local h=$1 mode=$2 op=-A
  [[ "$mode" == off ]] && op=-D
  netns_exec "$h" iptables "$op" INPUT -i eth0 -j DROP
  netns_exec "$h" iptables "$op" OUTPUT -o eth0 -j DROP
}

netns_loss() {
  local h=$1 p=$2
  netns_exec "$h" iptables -F INPUT
  [[ "$p" == 0 ]] && return 0
  netns_exec "$h" iptables -A INPUT -i eth0 -m statistic --mode random --probability "$p" -j DROP
}
