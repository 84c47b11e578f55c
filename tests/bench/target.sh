# shellcheck shell=bash disable=SC2154  # work and bin_dir come from the sourcing script
# Sourced by the benchmark scripts (not run): starting barrage-target.
#
# start_target NAME THREADS [COMMAND PREFIX...]: starts $bin_dir/barrage-target
# on a free loopback port with THREADS threads (empty: its default), behind
# the prefix (e.g. taskset -c 0), its output in $work/target.out and
# $work/target.err. Sets target_pid and address (HOST:PORT) and adds the pid
# to target_pids; exits 1, naming NAME, if it does not come up within 10 s.
# Optional, read at each call:
#   target_listen  the address to listen on (default 127.0.0.1:0)
#   target_flags   an array of more flags (e.g. --latency 5ms)
#   target_log     the stem of the output files (default target), for
#                  scripts that start more than one
# stop_targets: kills every target started, and waits for them (for traps).
target_pids=()
start_target() {
  local name=$1 threads=$2
  shift 2
  local log="$work/${target_log:-target}"
  local flags=(--listen "${target_listen:-127.0.0.1:0}")
  [[ -n "$threads" ]] && flags+=(--threads "$threads")
  if declare -p target_flags >/dev/null 2>&1; then flags+=("${target_flags[@]}"); fi
  : >"$log.out"  # exists before the background shell opens it
  "$@" "$bin_dir/barrage-target" "${flags[@]}" >"$log.out" 2>"$log.err" &
  target_pid=$!
  target_pids+=("$target_pid")
  address=""
  for _ in $(seq 100); do
    address=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log.out" || true)
    [[ -n "$address" ]] && break
    kill -0 "$target_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$address" ]]; then
    echo "$name: barrage-target did not start:" >&2
    cat "$log.err" >&2
    exit 1
  fi
}

stop_targets() {
  local p
  for p in "${target_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${target_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
