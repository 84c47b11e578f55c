#!/usr/bin/env bash
# connectionSharing against one connection per VU, side by side in one run,
# against one barrage-target (issue 16):
#   CPU per unary request at --busy-vus (default 32 and 1000) VUs calling back
#   to back for --duration: user+sys CPU of `barrage run` (/usr/bin/time) over
#   grpc_reqs from its summary export;
#   memory per VU with --idle-vus (default 10000) VUs connected and idle
#   (peak RSS of barrage / VUs).
# Prints one line per run and the ratios sharing / own.
#   sharing.sh [--busy-vus "32 1000"] [--idle-vus N] [--duration 10s] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUSY="32 1000" IDLE=10000 DURATION=10s BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --busy-vus) BUSY=$2; shift 2 ;;
    --idle-vus) IDLE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--busy-vus \"32 1000\"] [--idle-vus N] [--duration D] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/barrage" ] || { echo "sharing: $BIN/barrage is missing; build first" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
bin_dir=$BIN
# shellcheck source=tests/bench/target.sh
source tests/bench/target.sh
trap 'stop_targets; rm -rf "$work"' EXIT
start_target sharing ""
addr=$address
cp tests/bench/sharing.js "$work/"
cp -rL tests/bench/definitions "$work/"

declare -A cpu_us rss_kib
for vus in $BUSY; do
  for mode in off true; do
    /usr/bin/time -f '%U %S' -o "$work/time" "$BIN/barrage" run -q -u "$vus" -d "$DURATION" \
      --summary-export "$work/summary.json" -e TARGET="$addr" -e SHARING="$mode" -e MODE=busy "$work/sharing.js" \
      >"$work/out.log" 2>"$work/err.log" || { echo "sharing: barrage failed" >&2; tail "$work/err.log" >&2; exit 1; }
    reqs=$(python3 -c "import json;print(int(json.load(open('$work/summary.json'))['metrics']['grpc_reqs']['count']))")
    cpu=$(awk '{print $1 + $2}' "$work/time")
    cpu_us[$vus.$mode]=$(python3 -c "print(round($cpu * 1e6 / max($reqs, 1), 1))")
    echo "busy vus=$vus sharing=$mode requests=$reqs cpu_s=$cpu cpu_us_per_request=${cpu_us[$vus.$mode]}"
  done
  echo "  busy vus=$vus: shared / own CPU per request = $(python3 -c "print(round(${cpu_us[$vus.true]} / ${cpu_us[$vus.off]}, 3))")"
done
for mode in off true; do
  "$BIN/barrage" run -q -u "$IDLE" -d "$DURATION" -e TARGET="$addr" -e SHARING="$mode" -e MODE=idle \
    "$work/sharing.js" >"$work/out.log" 2>"$work/err.log" &
  pid=$!
  peak=0
  while kill -0 $pid 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.5
  done
  wait $pid || { echo "sharing: barrage failed" >&2; tail "$work/err.log" >&2; exit 1; }
  rss_kib[$mode]=$peak
  echo "idle vus=$IDLE sharing=$mode peak_rss_kib=$peak rss_per_vu_kib=$(python3 -c "print(round($peak / $IDLE, 1))")"
done
echo "  idle vus=$IDLE: shared / own memory = $(python3 -c "print(round(${rss_kib[true]} / ${rss_kib[off]}, 3))")"
echo "  goals: shared CPU per request <= own; shared idle memory <= 1/3 of own"
