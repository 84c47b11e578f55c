#!/usr/bin/env bash
# Benchmark: the web dashboard's cost to the controller (issue 17). A
# controller (`barrage run --listen …`) merges N simulated agents
# (agent_swarm --distinct --k6-names: N x 50 series named as the built-in
# metrics the dashboard reads: iterations, checks, grpc_req_duration) for D
# seconds, three times: without the dashboard, with it (K6_WEB_DASHBOARD_PERIOD
# 1s) and no page open, and with it and a page connected (an SSE client that
# reads every event, as a browser tab would). Prints the controller's CPU
# seconds for each and the difference per period.
# Usage: tests/bench/dashboard_cost.sh [--agents 200] [--duration 20] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
AGENTS=200
DURATION=20
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --agents) AGENTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--agents N] [--duration S] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
for b in barrage agent_swarm; do
  [ -x "$BIN/$b" ] || { echo "dashboard_cost: $BIN/$b is missing; build first" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

run() {  # $1 = off|idle|page; prints the controller's CPU seconds
  local mode=$1 dash=()
  [ "$mode" != off ] && dash=(--dashboard=127.0.0.1:0)
  K6_WEB_DASHBOARD_PERIOD=1s /usr/bin/time -f "%U %S" -o "$work/time.$mode" \
    "$BIN/barrage" run -q --listen 127.0.0.1:0 --expect-agents "$AGENTS" --agent-timeout 120s \
      "${dash[@]}" -e DURATION="${DURATION}s" tests/bench/swarm.js \
      >"$work/c.$mode.out" 2>"$work/c.$mode.err" &
  local pid=$! addr= url=
  for _ in $(seq 200); do
    addr=$(sed -n 's/.*control plane listening on \([0-9.:]*\).*/\1/p' "$work/c.$mode.err")
    url=$(sed -n 's/.*web dashboard on \(http:[^ "]*\).*/\1/p' "$work/c.$mode.err")
    [ -n "$addr" ] && { [ "$mode" = off ] || [ -n "$url" ]; } && break; sleep 0.05
  done
  if [ "$mode" = page ]; then
    curl -s -N "${url}events" -o "$work/events" --max-time $((DURATION + 60)) &
    pids+=($!)
  fi
  # The dashboard's own threads (dash-sample, dash-http): their CPU ticks,
  # read until the controller exits (the highest sum: they end before it).
  # ($pid is /usr/bin/time's; the controller is its child.)
  ( most=0
    while kill -0 "$pid" 2>/dev/null; do
      t=0
      child=$(pgrep -P "$pid" | head -n 1)
      for task in /proc/"${child:-0}"/task/*; do
        case $(cat "$task/comm" 2>/dev/null) in
          dash-*) t=$((t + $(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0))) ;;
        esac
      done
      [ "$t" -gt "$most" ] && most=$t && echo "$t" >"$work/dash_ticks.$mode"
      sleep 0.2
    done ) &
  pids+=($!)
  "$BIN/agent_swarm" --controller "$addr" --agents "$AGENTS" --duration "$DURATION" --distinct --k6-names \
    >"$work/swarm.$mode" 2>&1 &
  local swarm=$!
  wait $swarm
  wait $pid || true
  if [ "$mode" = page ]; then
    echo "page: $(grep -c '^event: update' "$work/events" || true) updates, $(wc -c <"$work/events") bytes" >"$work/page"
  fi
  tail -n 1 "$work/time.$mode" | awk '{print $1 + $2}'
}
off=$(run off)
idle=$(run idle)
page=$(run page)
echo "dashboard: $AGENTS agents x 50 distinct series for ${DURATION}s, period 1s; $(cat "$work/page")"
hz=$(getconf CLK_TCK)
awk -v a="$off" -v b="$idle" -v c="$page" -v d="$DURATION" -v ti="$(cat "$work/dash_ticks.idle" 2>/dev/null || echo 0)" \
    -v tp="$(cat "$work/dash_ticks.page" 2>/dev/null || echo 0)" -v hz="$hz" 'BEGIN {
  printf "  controller CPU: %.2fs without the dashboard, %.2fs with it and no page, %.2fs with a page connected\n", a, b, c
  printf "  the dashboard threads: %.1f ms of CPU per period without a page, %.1f ms with one (of the whole process: %+.1f and %+.1f ms, within its run-to-run noise)\n", ti / hz / d * 1000, tp / hz / d * 1000, (b - a) / d * 1000, (c - a) / d * 1000 }'
