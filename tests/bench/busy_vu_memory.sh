#!/usr/bin/env bash
# Benchmark: N busy VUs (default 1,000) on one process, each with its own gRPC
# connection to barrage-target, calling SayHello in a loop as fast as it can
# (tests/bench/unary_nolog.js). Samples the resident memory of barrage every
# second from the moment its VUs are initialised, and prints RSS per VU at
# 10 s and at the end (default 60 s), the peak after 10 s, and the growth
# between 10 s and the end: a busy VU must not keep growing (issue 14's goal:
# <= 512 KiB per busy VU after 60 s, flat after the first 10 s).
# --samples FILE keeps the time series (seconds since init, RSS KiB).
# Usage: tests/bench/busy_vu_memory.sh [--vus N] [--seconds S] [--script JS] [--samples FILE] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
VUS=1000
SECONDS_RUN=60
SCRIPT=tests/bench/unary_nolog.js
SAMPLES=
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --vus) VUS=$2; shift 2 ;;
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    --script) SCRIPT=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    *) echo "usage: $0 [--vus N] [--seconds S] [--script JS] [--samples FILE] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/barrage" ] || { echo "busy_vu_memory: $BIN/barrage is missing; build first" >&2; exit 1; }
[ "$SECONDS_RUN" -gt 10 ] || { echo "busy_vu_memory: --seconds must be more than 10" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
target_pid=
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$BIN/barrage-target" --listen 127.0.0.1:0 >"$work/target.log" 2>&1 &
target_pid=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/^barrage-target listening on \(.*\)$/\1/p' "$work/target.log"); [ -n "$addr" ] && break; sleep 0.1
done
[ -n "${addr:-}" ] || { echo "busy_vu_memory: barrage-target did not start" >&2; cat "$work/target.log" >&2; exit 1; }
# A few seconds more than sampled: the run must still be going at the last sample.
# Thresholds off: the script's latency threshold is not what is measured.
"$BIN/barrage" run -v -q --no-thresholds --summary-export "$work/summary.json" -u "$VUS" -d "$((SECONDS_RUN + 5))s" -e TARGET="$addr" "$SCRIPT" \
  >"$work/out.log" 2>"$work/err.log" &
pid=$!
# Init can take a while with many VUs on a loaded machine; bounded.
for _ in $(seq 1200); do
  grep -q 'initialized [0-9]* VUs' "$work/err.log" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
grep -q 'initialized [0-9]* VUs' "$work/err.log" ||
  { echo "busy_vu_memory: barrage did not initialise its VUs:" >&2; tail -20 "$work/err.log" >&2; exit 1; }
: >"$work/samples"
start=$(date +%s.%N)
for t in $(seq 0 "$SECONDS_RUN"); do
  # One sample a second, on the second (sleep to the next mark, not 1 s).
  now=$(date +%s.%N)
  wait_s=$(awk -v s="$start" -v n="$now" -v t="$t" 'BEGIN { d = s + t - n; print (d > 0 ? d : 0) }')
  sleep "$wait_s"
  kill -0 $pid 2>/dev/null || { echo "busy_vu_memory: barrage stopped early:" >&2; tail -20 "$work/err.log" >&2; exit 1; }
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  echo "$t $rss" >>"$work/samples"
done
wait $pid || { echo "busy_vu_memory: barrage failed:" >&2; tail -20 "$work/err.log" >&2; exit 1; }
pid=
[ -n "$SAMPLES" ] && cp "$work/samples" "$SAMPLES"
reqs=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["metrics"]["grpc_reqs"]["count"]))' \
  "$work/summary.json" 2>/dev/null || echo "?")
awk -v vus="$VUS" -v end="$SECONDS_RUN" -v script="$(basename "$SCRIPT")" '
  $1 == 10 { at10 = $2 }
  $1 >= 10 && $2 > peak { peak = $2 }
  $1 == end { atend = $2 }
  END {
    printf "busy_vu_memory script=%s vus=%d seconds=%d rss_per_vu_kib_at_10s=%d rss_per_vu_kib_at_end=%d peak_per_vu_kib_after_10s=%d growth_after_10s_kib=%d (%.1f%%)\n",
      script, vus, end, at10 / vus, atend / vus, peak / vus, atend - at10, 100 * (atend - at10) / at10
  }' "$work/samples"
echo "  requests: $reqs in $((SECONDS_RUN + 5)) s"
echo "  RSS every 10 s (KiB): $(awk '$1 % 10 == 0 { printf "%s:%s ", $1, $2 }' "$work/samples")"
echo "  goals: <= 512 KiB per busy VU at the end, no growth after 10 s"
