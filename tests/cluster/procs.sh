# Background processes of controlplane.sh and node.sh (sourced by both). Set first:
#   PROC_WHO      the name in messages ("controlplane", "node")
#   PROC_LOGS     log file prefix: <prefix><name>.log      PROC_PIDS  folder of <name>.pid
# start <name> <cmd...>: runs cmd detached (its own session), appending to its log.
start() {
  local name="$1"; shift
  setsid "$@" </dev/null >>"$PROC_LOGS$name.log" 2>&1 &
  echo $! >"$PROC_PIDS/$name.pid"
}
# ready <name> <seconds> <cmd...>: retries cmd until it succeeds; else prints name's log tail, fails.
ready() {
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS > deadline )); then
      echo "$PROC_WHO: $what not ready after ${secs}s; log tail:" >&2
      tail -n 40 "$PROC_LOGS$what.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}
