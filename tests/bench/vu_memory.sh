#!/usr/bin/env bash
# Benchmark: N VUs on one process (default 10,000), each with its own gRPC
# connection to barrage-target, connected and idle-looping with sleep(1).
# Prints resident memory per VU (peak RSS of barrage / N) and the VU
# initialisation rate after the one-time compile (from barrage's -v log),
# per wall-clock second and per CPU-second of the process (the steadier
# figure on a machine shared with other work).
# --script tests/bench/unary_nolog.js measures busy VUs instead (each calls
# SayHello in a loop): what garbage a VU holds between collections.
# Usage: tests/bench/vu_memory.sh [--vus N] [--duration D] [--script JS] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
VUS=10000
DURATION=20s
SCRIPT=tests/bench/idle_vus.js
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --vus) VUS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    --script) SCRIPT=$2; shift 2 ;;
    *) echo "usage: $0 [--vus N] [--duration D] [--script JS] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/barrage" ] || { echo "vu_memory: $BIN/barrage is missing; build first" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
trap 'kill $target_pid 2>/dev/null || true; rm -rf "$work"' EXIT
"$BIN/barrage-target" --listen 127.0.0.1:0 >"$work/target.log" 2>&1 &
target_pid=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/^barrage-target listening on \(.*\)$/\1/p' "$work/target.log"); [ -n "$addr" ] && break; sleep 0.1
done
[ -n "${addr:-}" ] || { echo "vu_memory: barrage-target did not start" >&2; cat "$work/target.log" >&2; exit 1; }
"$BIN/barrage" run -v -q --no-summary -u "$VUS" -d "$DURATION" -e TARGET="$addr" "$SCRIPT" \
  >"$work/out.log" 2>"$work/err.log" &
pid=$!
peak=0
while kill -0 $pid 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  [ "${rss:-0}" -gt "$peak" ] && peak=$rss
  sleep 0.5
done
wait $pid || { echo "vu_memory: barrage failed:" >&2; tail -20 "$work/err.log" >&2; exit 1; }
init=$(grep -o 'initialized [0-9]* VUs in [0-9.]* s ([^)]*)' "$work/err.log" | tail -1)
rate=$(echo "$init" | sed -n 's/.*(\([0-9]*\) VUs\/s.*/\1/p')
cpu_rate=$(echo "$init" | sed -n 's/.* \([0-9]*\) VUs per CPU-second)/\1/p')
echo "vu_memory script=$(basename "$SCRIPT") vus=$VUS peak_rss_kib=$peak rss_per_vu_kib=$((peak / VUS)) init_rate_vus_per_s=${rate:-?} init_vus_per_cpu_s=${cpu_rate:-?}"
echo "  ($init)"
echo "  goals: RSS <= 2 GiB total (<= 200 KiB per VU); init >= 5000 VUs/s"
