#!/usr/bin/env bash
# Benchmark: the distributed mode (issue #5's figures), on loopback.
#  1. Merge cost: a controller (`barrage run --listen`) with N simulated
#     agents (agent_swarm: real protocol, 50 series each, trends included,
#     one delta per second). Controller CPU per second of metrics = (CPU with
#     N agents - CPU with 1) / duration; the merged totals must equal what
#     the swarm sent; the swarm's write latency shows whether the controller
#     keeps up.
#  2. Start skew: `barrage run -v --agents 4`: each agent logs how long after
#     the scheduled start its scenarios began.
#  3. Throughput: the same 32-VU unary test embedded and with --agents 2.
# Usage: tests/bench/distributed.sh [--agents "200 1000"] [--duration 20] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
AGENTS="200 1000"
DURATION=20
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --agents) AGENTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--agents \"200 1000\"] [--duration S] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
for b in barrage barrage-agent barrage-target agent_swarm; do
  [ -x "$BIN/$b" ] || { echo "distributed: $BIN/$b is missing; build first" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
fail=0

# Runs a controller for $1 simulated agents; prints "cpu_seconds" and leaves
# $work/c$1.json and $work/swarm$1.txt.
merge_run() {
  local n=$1
  /usr/bin/time -f "%U %S" -o "$work/time$n" \
  "$BIN/barrage" run -q --listen 127.0.0.1:0 --expect-agents "$n" --agent-timeout 120s \
    --summary-trend-stats count,p\(99\) --summary-export "$work/c$n.json" -e DURATION="${DURATION}s" \
    tests/bench/swarm.js >"$work/c$n.out" 2>"$work/c$n.err" &
  local pid=$!
  local addr=
  for _ in $(seq 200); do
    addr=$(sed -n 's/.*control plane listening on \([0-9.:]*\).*/\1/p' "$work/c$n.err"); [ -n "$addr" ] && break; sleep 0.05
  done
  [ -n "$addr" ] || { echo "distributed: the controller did not listen" >&2; cat "$work/c$n.err" >&2; exit 1; }
  "$BIN/agent_swarm" --controller "$addr" --agents "$n" --duration "$DURATION" >"$work/swarm$n.txt" 2>&1 || fail=1
  wait $pid || true
  awk '{print $1 + $2}' "$work/time$n"
}
base=$(merge_run 1)
for n in $AGENTS; do
  cpu=$(merge_run "$n")
  swarm=$(cat "$work/swarm$n.txt")
  sent=$(sed -n 's/.*counter_sum=\([0-9]*\).*/\1/p' <<<"$swarm")
  samples=$(sed -n 's/.*trend_samples=\([0-9]*\).*/\1/p' <<<"$swarm")
  got=$(jq -r '.metrics.sim_requests.count // 0' "$work/c$n.json")
  got_samples=$(jq -r '.metrics.sim_latency.count // 0' "$work/c$n.json")
  pct=$(awk -v c="$cpu" -v b="$base" -v d="$DURATION" 'BEGIN {printf "%.1f", (c - b) / d * 100}')
  echo "merge: $n agents x 50 series, 1 s interval, ${DURATION}s: controller CPU ${pct}% of one core (total ${cpu}s, 1-agent baseline ${base}s)"
  echo "  merged sim_requests $got (sent $sent), sim_latency samples $got_samples (sent $samples); $(grep -o 'write_ms_p50.*' <<<"$swarm")"
  if [ "$got" != "$sent" ] || [ "$got_samples" != "$samples" ]; then echo "  MISMATCH: merged totals differ from what was sent"; fail=1; fi
done

bin_dir=$BIN
# shellcheck source=tests/bench/target.sh
source tests/bench/target.sh
start_target distributed ""
pids+=("$target_pid")
addr=$address
"$BIN/barrage" run -v -q --no-summary --agents 4 -u 8 -d 3s -e TARGET="$addr" tests/bench/unary_nolog.js \
  >"$work/skew.out" 2>"$work/skew.err" || fail=1
grep -o 'scenarios started [0-9.]* ms after' "$work/skew.err" | awk '{print $3}' | sort -n >"$work/skew.txt"
echo "start skew over 4 agents: $(tr '\n' ' ' <"$work/skew.txt")ms after the scheduled start; spread $(awk 'NR==1{a=$1} {b=$1} END {printf "%.3f", b - a}' "$work/skew.txt") ms"

for mode in embedded agents2; do
  flags=()
  [ $mode = agents2 ] && flags=(--agents 2)
  "$BIN/barrage" run -q "${flags[@]}" -u 32 -d 10s -e TARGET="$addr" --summary-export "$work/$mode.json" \
    tests/bench/unary_nolog.js >/dev/null 2>"$work/$mode.err" || fail=1
  echo "throughput $mode: $(jq -r '.metrics.iterations.count' "$work/$mode.json") iterations in 10s ($(jq -r '.metrics.iterations.rate | floor' "$work/$mode.json")/s)"
done
exit $fail
