#!/usr/bin/env bash
# Benchmark: how exactly the arrival-rate executors keep their schedule
# against barrage-target on loopback (issue #4's accuracy figures).
#  1. constant-arrival-rate 2,000/s for 10 s with VUs to spare: iterations
#     started and dropped (want 20,000 +- 1 %, 0 dropped) and the start delay
#     of each iteration after its scheduled time (p50, p99, max).
#  2. The same split into three execution segments run at once as three
#     processes: the parts' iterations must add up to the whole.
#  3. Too few VUs (2 VUs, a 5 ms target): every due iteration is either
#     started or in dropped_iterations; the sum must be exact.
#  4. ramping-arrival-rate 0 -> 2,000/s over 5 s then 5 s at 2,000/s: the
#     curve's area is 15,000 iterations.
# Usage: tests/bench/arrival_rate.sh [--rate N] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=2000
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--rate N] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/barrage" ] || { echo "arrival_rate: $BIN/barrage is missing; build first" >&2; exit 1; }
work=$(mktemp -d)
bin_dir=$BIN
# shellcheck source=tests/bench/target.sh
source tests/bench/target.sh
trap 'stop_targets; rm -rf "$work"' EXIT
# Runs barrage; $1 = name, rest = flags. Leaves $work/NAME.json and .err.
run() {
  local name=$1; shift
  "$BIN/barrage" run -v -q --summary-export "$work/$name.json" "$@" tests/bench/arrival.js \
    >"$work/$name.out" 2>"$work/$name.err" || { echo "arrival_rate: run $name failed:" >&2; tail -20 "$work/$name.err" >&2; exit 1; }
}
count() {  # $1 = name, $2 = metric: its count, 0 when absent
  jq -r --arg m "$2" '.metrics[$m].count // 0' "$work/$1.json"
}
delays() {  # the engine's per-scenario start-delay line
  grep -o 'start delay p50=[0-9.]*ms p99=[0-9.]*ms max=[0-9.]*ms' "$work/$1.err" | tail -1
}
target_log=fast start_target arrival_rate ""
fast=$address
target_flags=(--latency 5ms)
target_log=slow start_target arrival_rate ""
unset target_flags
slow=$address
want=$((RATE * 10))
fail=0
exact() {  # $1 = got, $2 = want: a split or starved schedule must add up exactly
  [ "$1" -eq "$2" ] || { echo "  MISMATCH: $1 != $2"; fail=1; }
}

run whole -e TARGET="$fast" -e RATE="$RATE" -e DURATION=10s -e PRE=50 -e MAX=200
echo "constant-arrival-rate ${RATE}/s x 10s: $(count whole iterations) started (want $want +- 1%), $(count whole dropped_iterations) dropped; $(delays whole)"

for seg in 0:1/3 1/3:2/3 2/3:1; do
  name=part${seg//[:\/]/_}
  "$BIN/barrage" run -q --summary-export "$work/$name.json" --execution-segment "$seg" \
    --execution-segment-sequence 0,1/3,2/3,1 -e TARGET="$fast" -e RATE="$RATE" -e DURATION=10s -e PRE=50 -e MAX=200 \
    tests/bench/arrival.js >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  parts+=("$name")
done
for p in "${pids[@]}"; do wait "$p"; done
sum=0; line=
for name in "${parts[@]}"; do
  n=$(count "$name" iterations); d=$(count "$name" dropped_iterations)
  sum=$((sum + n + d)); line="$line $n+$d"
done
echo "  split in 3 segments, run at once: started+dropped per part:$line = $sum (want $want exactly)"
exact "$sum" "$want"

run starved -e TARGET="$slow" -e RATE="$RATE" -e DURATION=5s -e PRE=2 -e MAX=2
started=$(count starved iterations); dropped=$(count starved dropped_iterations)
echo "too few VUs (2 VUs, 5 ms target), ${RATE}/s x 5s: $started started + $dropped dropped = $((started + dropped)) (want $((RATE * 5)) exactly)"
exact $((started + dropped)) $((RATE * 5))

run ramping -e KIND=ramping -e TARGET="$fast" -e RATE="$RATE" -e DURATION=5s -e PRE=50 -e MAX=200
echo "ramping-arrival-rate 0->${RATE}/s over 5s, then 5s: $(count ramping iterations) started, $(count ramping dropped_iterations) dropped (want $((RATE * 5 / 2 + RATE * 5)) in all); $(delays ramping)"
total=$(( $(count ramping iterations) + $(count ramping dropped_iterations) ))
exact "$total" $((RATE * 5 / 2 + RATE * 5))
exit $fail
