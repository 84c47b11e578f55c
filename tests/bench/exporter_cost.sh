#!/usr/bin/env bash
# Benchmark: the cost of the Prometheus endpoint with many series (issue #6).
# A controller (`barrage run --listen … --prometheus`) merges N simulated
# agents (agent_swarm --distinct: every agent's series are its own, so the
# controller holds N x 50 series: 10,000 by default) for D seconds, twice:
# once scraped every second with curl, once not scraped. Prints the scrape
# time (p50, max) and size, and the controller's CPU per scrape; then the
# CPU per scrape of the same store at rest (after the test, --linger).
# Usage: tests/bench/exporter_cost.sh [--agents 200] [--duration 20] [--bin-dir build/bin]
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
  [ -x "$BIN/$b" ] || { echo "exporter_cost: $BIN/$b is missing; build first" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {  # $1 = scrape|quiet; prints the controller's CPU seconds
  local mode=$1
  /usr/bin/time -f "%U %S" -o "$work/time.$mode" \
    "$BIN/barrage" run -q --listen 127.0.0.1:0 --expect-agents "$AGENTS" --agent-timeout 120s \
      --prometheus 127.0.0.1:0 --prometheus-max-series 100000 -e DURATION="${DURATION}s" tests/bench/swarm.js \
      >"$work/c.$mode.out" 2>"$work/c.$mode.err" &
  local pid=$! addr= metrics=
  for _ in $(seq 200); do
    addr=$(sed -n 's/.*control plane listening on \([0-9.:]*\).*/\1/p' "$work/c.$mode.err")
    metrics=$(sed -n 's/.*Prometheus metrics on \(http:[^ "]*\).*/\1/p' "$work/c.$mode.err")
    [ -n "$addr" ] && [ -n "$metrics" ] && break; sleep 0.05
  done
  "$BIN/agent_swarm" --controller "$addr" --agents "$AGENTS" --duration "$DURATION" --distinct >"$work/swarm.$mode" 2>&1 &
  local swarm=$!
  if [ "$mode" = scrape ]; then
    sleep 3
    : >"$work/scrapes"
    for _ in $(seq $((DURATION - 4))); do
      curl -s -o "$work/body" -w '%{time_total} %{size_download}\n' "$metrics" >>"$work/scrapes" || true
      sleep 1
    done
  fi
  wait $swarm
  wait $pid || true
  # /usr/bin/time writes "Command exited with non-zero status N" first when it did.
  tail -n 1 "$work/time.$mode" | awk '{print $1 + $2}'
}
# The same store, still: after the swarm, the controller lingers and is
# scraped 20 times; its CPU (utime + stime from /proc, in clock ticks) over
# those scrapes alone, with no merges beside them.
still() {
  local hz pid addr= metrics= t0 t1
  hz=$(getconf CLK_TCK)
  "$BIN/barrage" run -q --listen 127.0.0.1:0 --expect-agents "$AGENTS" --agent-timeout 120s \
    --prometheus 127.0.0.1:0 --prometheus-max-series 100000 --linger 120s -e DURATION=8s tests/bench/swarm.js \
    >"$work/c.still.out" 2>"$work/c.still.err" &
  pid=$!
  for _ in $(seq 200); do
    addr=$(sed -n 's/.*control plane listening on \([0-9.:]*\).*/\1/p' "$work/c.still.err")
    metrics=$(sed -n 's/.*Prometheus metrics on \(http:[^ "]*\).*/\1/p' "$work/c.still.err")
    [ -n "$addr" ] && [ -n "$metrics" ] && break; sleep 0.05
  done
  "$BIN/agent_swarm" --controller "$addr" --agents "$AGENTS" --duration 8 --distinct >"$work/swarm.still" 2>&1
  for _ in $(seq 300); do grep -q "serving the final" "$work/c.still.err" && break; sleep 0.1; done
  sleep 1
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  for _ in $(seq 20); do curl -s -o /dev/null "$metrics"; done
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) / hz / 20 * 1000}'
}
quiet=$(run quiet)
scraped=$(run scrape)
still_ms=$(still)
n=$(wc -l <"$work/scrapes")
series=$(grep -c '^barrage_' "$work/body" || true)
stats=$(sort -n "$work/scrapes" | awk '{t[NR]=$1; s=$2} END {printf "p50 %.1f ms, max %.1f ms, %d bytes", t[int((NR+1)/2)]*1000, t[NR]*1000, s}')
per=$(awk -v a="$scraped" -v b="$quiet" -v n="$n" 'BEGIN {printf "%.1f", (a - b) / n * 1000}')
echo "exporter: $AGENTS agents x 50 distinct series; /metrics has $series sample lines; $n scrapes: $stats"
echo "  controller CPU ${scraped}s with a scrape a second, ${quiet}s without: ${per} ms of CPU per scrape"
echo "  after the test (no merges beside): ${still_ms} ms of CPU per scrape (20 scrapes)"
