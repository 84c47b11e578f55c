#!/usr/bin/env bash
# Streaming benchmark against one barrage-target on 127.0.0.1 (a free port), in two parts.
#
# 1. Echo: bidirectional streaming ping-pong on hello.HelloService/BidiHello,
#    every stream writing its next message on each reply; messages per client
#    CPU-second, the clients run one after the other against the same target:
#      bare_stream         bare_stream_client: async gRPC C++, --vus streams, a
#                          channel (TCP connection) each, as k6 gives each VU
#      bare_stream_shared  the same, all streams on one channel
#      barrage             `barrage run` of stream_echo.js: --vus VUs, one stream
#                          each for the whole test (messages: --summary-export,
#                          metrics.grpc_streams_msgs_received.count)
#    For each: messages received, wall seconds, CPU seconds (user+sys of the
#    client's whole process tree, from /usr/bin/time, as client_cpu.sh), messages
#    per CPU-second and its ratio to bare_stream. Goal: barrage >= 0.6 x bare.
#
# 2. Idle streams (--idle-streams N; 0 skips): barrage with N VUs, each with its
#    own connection holding one open BidiHello stream that carries nothing
#    (idle_streams.js), then the same VUs and connections without a stream
#    (idle_streams_baseline.js). For each: peak RSS (VmHWM) and CPU over a
#    window in the middle of the hold (/proc/PID/stat, from 30 % to 80 % of the
#    duration after the VUs are up). Per idle stream: (RSS with - RSS without) / N
#    and (CPU with - CPU without) / N / window seconds.
#
#   stream_echo.sh [--duration 10s] [--vus 32] [--idle-streams 1000] [--idle-duration D]
#                  [--bin-dir build/bin] [--no-pin] [--bare-only]
# --idle-duration defaults to --duration. --bare-only runs the bare clients alone.
#
# Pinning (as client_cpu.sh): with 2+ cores the target runs on CPU 0 (one
# completion-queue thread) and each client, in turn, on CPU 1, barrage with
# --threads 1. --no-pin turns this off.
#
# Exit status: 0 when every part ran and counted; 1 when a bare client failed,
# barrage reported no messages or logged a stream error, or the idle streams
# did not all open; 2 for bad arguments or missing tools.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
duration=10s vus=32 idle_streams=1000 idle_duration="" bin_dir="$repo/build/bin" pin=1 bare_only=0
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --vus) vus=$2; shift 2 ;;
    --idle-streams) idle_streams=$2; shift 2 ;;
    --idle-duration) idle_duration=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --no-pin) pin=0; shift ;;
    --bare-only) bare_only=1; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "stream_echo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
idle_duration=${idle_duration:-$duration}

# Seconds in a Go-style duration ("10s", "1m30s", "500ms").
seconds_of() {
  awk -v t="$1" 'BEGIN {
    total = 0
    while (t != "" && match(t, /^[0-9]+(\.[0-9]+)?(ms|s|m|h)/)) {
      tok = substr(t, 1, RLENGTH); t = substr(t, RLENGTH + 1)
      unit = tok; sub(/^[0-9.]+/, "", unit)
      total += (tok + 0) * (unit == "ms" ? 0.001 : unit == "s" ? 1 : unit == "m" ? 60 : 3600)
    }
    if (t != "" || total <= 0) exit 1
    print total
  }'
}
duration_s=$(seconds_of "$duration") || { echo "stream_echo.sh: --duration: cannot read \"$duration\"" >&2; exit 2; }
idle_duration_s=$(seconds_of "$idle_duration") || {
  echo "stream_echo.sh: --idle-duration: cannot read \"$idle_duration\"" >&2; exit 2; }
[[ "$vus" =~ ^[1-9][0-9]*$ ]] || { echo "stream_echo.sh: --vus: expected a positive number" >&2; exit 2; }
[[ "$idle_streams" =~ ^[0-9]+$ ]] || { echo "stream_echo.sh: --idle-streams: expected a number" >&2; exit 2; }

for tool in /usr/bin/time jq; do
  command -v "$tool" >/dev/null || { echo "stream_echo.sh: $tool not found (scripts/setup.sh)" >&2; exit 2; }
done
needed=(barrage-target bare_stream_client)
((bare_only)) || needed+=(barrage)
for bin in "${needed[@]}"; do
  [[ -x "$bin_dir/$bin" ]] || { echo "stream_echo.sh: $bin_dir/$bin not built" >&2; exit 2; }
done
# One connection per VU, and the target's end of each.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/barrage_stream_echo.XXXXXX)
target_pid=""
cleanup() {
  if [[ -n "$target_pid" ]]; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

server_pin=() client_pin=() barrage_threads=()
if ((pin)) && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
  barrage_threads=(--threads 1)
  target_threads=1
else
  pin=0
  target_threads=$(nproc)
fi

# shellcheck source=tests/bench/target.sh
source "$here/target.sh"
start_target stream_echo.sh "$target_threads" "${server_pin[@]}"

echo "stream_echo: target $address (pinned: $([[ $pin == 1 ]] && echo "server CPU 0, clients CPU 1" || echo no))," \
     "$vus streams for $duration$( ((idle_streams > 0 && !bare_only)) && echo ", then $idle_streams idle streams for $idle_duration")"

failed=0

# --- Part 1: echo -----------------------------------------------------------

# Runs a client under /usr/bin/time; sets cpu (user+sys seconds of the process
# tree) and wall (seconds). Output goes to $work/$name.out and .err.
measure() {
  local name=$1
  shift
  local start end rc=0
  start=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$work/$name.time" "${client_pin[@]}" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  end=$(date +%s.%N)
  cpu=$(awk '{ print $1 + $2 }' "$work/$name.time" | tail -1)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  return $rc
}

declare -A result_messages result_cpu result_wall result_note
peers=()

record() {  # name messages [note]
  local name=$1 n=${2:-0}
  peers+=("$name")
  result_messages[$name]=${n:-0}
  result_cpu[$name]=$cpu
  result_wall[$name]=$wall
  result_note[$name]=${3:-}
  if [[ -z "$n" || "$n" == 0 || -n "${3:-}" ]]; then
    [[ -n "${3:-}" ]] || result_note[$name]="no messages; see below"
    failed=1
    echo "--- $name stdout/stderr:" >&2
    tail -n 20 "$work/$name.out" "$work/$name.err" >&2 || true
  fi
}

# Bounds every client: a hung stream must not hang the benchmark.
limit=$(awk -v d="$duration_s" 'BEGIN { printf "%d", d + 90 }')

for shared in 0 1; do
  name=bare_stream
  args=(--target "$address" --streams "$vus" --duration "$duration")
  if ((shared)); then name=bare_stream_shared; args+=(--shared-channel); fi
  rc=0
  measure "$name" timeout "$limit" "$bin_dir/bare_stream_client" "${args[@]}" || rc=$?
  note=""
  ((rc == 0)) || note="exit code $rc"
  record "$name" "$(sed -n 's/^bare_stream_client .* messages=\([0-9]*\).*/\1/p' "$work/$name.out")" "$note"
done

if ((!bare_only)); then
  rc=0
  measure barrage timeout "$limit" "$bin_dir/barrage" run -q "${barrage_threads[@]}" \
    -e "TARGET=$address" -e "VUS=$vus" -e "DURATION=$duration" \
    --summary-export "$work/barrage.json" "$here/stream_echo.js" || rc=$?
  n=0
  if [[ -s "$work/barrage.json" ]]; then
    n=$(jq -r '(.metrics.grpc_streams_msgs_received.count // 0) | floor' "$work/barrage.json" 2>/dev/null || echo 0)
  fi
  note=""
  ((rc == 0)) || note="exit code $rc"
  stream_errors=$(grep -c 'stream failed' "$work/barrage.err" || true)
  ((stream_errors == 0)) || note="${note:+$note, }$stream_errors stream errors"
  record barrage "$n" "$note"
fi

bare_rate=$(awk -v c="${result_cpu[bare_stream]}" -v n="${result_messages[bare_stream]}" \
  'BEGIN { if (c > 0) printf "%.3f", n / c; else print 0 }')
printf '%-19s %10s %8s %10s %8s %12s %7s  %s\n' peer messages seconds msgs/s cpu_s msgs/cpu_s x_bare note
for name in "${peers[@]}"; do
  awk -v name="$name" -v n="${result_messages[$name]}" -v c="${result_cpu[$name]}" -v w="${result_wall[$name]}" \
      -v bare="$bare_rate" -v note="${result_note[$name]}" 'BEGIN {
    rate = c > 0 ? n / c : 0
    printf "%-19s %10d %8.2f %10.0f %8.2f %12.0f %7.2f  %s\n", name, n, w, (w > 0 ? n / w : 0), c, rate,
      (bare > 0 ? rate / bare : 0), note
  }'
done
for name in "${peers[@]}"; do
  awk -v name="$name" -v n="${result_messages[$name]}" -v c="${result_cpu[$name]}" -v w="${result_wall[$name]}" \
      -v bare="$bare_rate" 'BEGIN {
    rate = c > 0 ? n / c : 0
    printf "stream_echo peer=%s messages=%d seconds=%.3f cpu_seconds=%.3f msgs_per_cpu_s=%.1f ratio_to_bare=%.3f\n",
      name, n, w, c, rate, (bare > 0 ? rate / bare : 0)
  }'
done

# --- Part 2: idle streams ---------------------------------------------------

if ((bare_only || idle_streams == 0)); then exit $failed; fi

clock_ticks=$(getconf CLK_TCK)

# utime+stime, in clock ticks, of a process and its children.
cpu_ticks() {
  local total=0 p fields
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    fields=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    total=$((total + $(awk '{ print $12 + $13 }' <<<"$fields")))
  done
  echo "$total"
}

# Runs barrage on an idle script; sets idle_rss (peak KiB), idle_cpu (ticks
# in the window), idle_window (seconds), idle_opened (grpc_streams count).
run_idle() {
  local name=$1 script=$2
  local pid now t_up="" t_a="" t_b="" ticks_a="" ticks_b="" hwm rc=0
  "${client_pin[@]}" "$bin_dir/barrage" run -v -q "${barrage_threads[@]}" \
    -e "TARGET=$address" -e "VUS=$idle_streams" -e "DURATION=$idle_duration" \
    --summary-export "$work/$name.json" "$here/$script" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  local deadline
  deadline=$(awk -v d="$idle_duration_s" -v n="$(date +%s.%N)" 'BEGIN { printf "%.3f", n + d + 60 }')
  idle_rss=0
  while kill -0 "$pid" 2>/dev/null; do
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n "$hwm" && "$hwm" -gt "$idle_rss" ]] && idle_rss=$hwm
    now=$(date +%s.%N)
    if [[ -z "$t_up" ]] && grep -q "initialized [0-9]* VUs" "$work/$name.err"; then
      t_up=$now
      t_a=$(awk -v u="$now" -v d="$idle_duration_s" 'BEGIN { printf "%.3f", u + 0.3 * d }')
      t_b=$(awk -v u="$now" -v d="$idle_duration_s" 'BEGIN { printf "%.3f", u + 0.8 * d }')
    fi
    if [[ -n "$t_a" && -z "$ticks_a" ]] && awk -v n="$now" -v a="$t_a" 'BEGIN { exit !(n >= a) }'; then
      ticks_a=$(cpu_ticks "$pid"); t_a=$now
    fi
    if [[ -n "$ticks_a" && -z "$ticks_b" ]] && awk -v n="$now" -v b="$t_b" 'BEGIN { exit !(n >= b) }'; then
      ticks_b=$(cpu_ticks "$pid"); t_b=$now
    fi
    if awk -v n="$now" -v d="$deadline" 'BEGIN { exit !(n >= d) }'; then
      echo "stream_echo.sh: $name: barrage still running after $idle_duration + 60 s; stopping it" >&2
      kill -INT "$pid" 2>/dev/null || true
      sleep 5
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.1
  done
  wait "$pid" || rc=$?
  idle_cpu=0 idle_window=0
  if [[ -n "$ticks_a" && -n "$ticks_b" ]]; then
    idle_cpu=$((ticks_b - ticks_a))
    idle_window=$(awk -v a="$t_a" -v b="$t_b" 'BEGIN { printf "%.3f", b - a }')
  fi
  idle_opened=0
  if [[ -s "$work/$name.json" ]]; then
    idle_opened=$(jq -r '(.metrics.grpc_streams.count // 0) | floor' "$work/$name.json" 2>/dev/null || echo 0)
  fi
  if ((rc != 0)) || [[ "$idle_window" == 0 ]]; then
    echo "stream_echo.sh: $name: barrage exit code $rc$([[ "$idle_window" == 0 ]] && echo ", no measuring window (VUs never up?)")" >&2
    grep -v 'level=debug' "$work/$name.err" | tail -n 20 >&2 || true
    idle_ok=0
  fi
}

idle_ok=1
run_idle idle_baseline idle_streams_baseline.js
base_rss=$idle_rss base_cpu=$idle_cpu base_window=$idle_window
run_idle idle_streams idle_streams.js
streams_rss=$idle_rss streams_cpu=$idle_cpu streams_window=$idle_window streams_opened=$idle_opened
note=""
if ((streams_opened < idle_streams)); then
  note="only $streams_opened of $idle_streams streams opened"
  idle_ok=0
  echo "--- idle_streams stderr:" >&2
  grep -v 'level=debug' "$work/idle_streams.err" | tail -n 20 >&2 || true
fi

printf '%-14s %6s %8s %14s %12s %9s  %s\n' run vus streams peak_rss_MiB window_cpu_ms window_s note
awk -v v="$idle_streams" -v r="$base_rss" -v c="$base_cpu" -v w="$base_window" -v t="$clock_ticks" \
  'BEGIN { printf "%-14s %6d %8d %14.1f %12.0f %9.2f\n", "baseline", v, 0, r / 1024, c * 1000 / t, w }'
awk -v v="$idle_streams" -v s="$streams_opened" -v r="$streams_rss" -v c="$streams_cpu" -v w="$streams_window" \
  -v t="$clock_ticks" -v note="$note" \
  'BEGIN { printf "%-14s %6d %8d %14.1f %12.0f %9.2f  %s\n", "idle_streams", v, s, r / 1024, c * 1000 / t, w, note }'
if ((!idle_ok)); then
  echo "per idle stream: not measured (see above)"
  exit 1
fi
awk -v n="$idle_streams" -v rb="$base_rss" -v rs="$streams_rss" -v cb="$base_cpu" -v cs="$streams_cpu" \
    -v wb="$base_window" -v ws="$streams_window" -v t="$clock_ticks" 'BEGIN {
  rss = (rs - rb) / n
  # CPU per stream per second: each run'\''s window rate, less the baseline'\''s.
  rate_s = ws > 0 ? cs / t / ws : 0
  rate_b = wb > 0 ? cb / t / wb : 0
  us = (rate_s - rate_b) * 1e6 / n
  # One clock tick in either window, spread over the streams: the resolution.
  res = (ws > 0 ? 1e6 / t / ws / n : 0) + (wb > 0 ? 1e6 / t / wb / n : 0)
  printf "per idle stream: %.1f KiB RSS, %.2f µs CPU per second (+- %.2f, clock ticks); %d streams: %.2f %% of a core\n",
    rss, us, res, n, (rate_s - rate_b) * 100
  printf "stream_echo idle_streams=%d opened=%d rss_baseline_kib=%d rss_streams_kib=%d rss_per_stream_kib=%.1f cpu_us_per_stream_per_s=%.3f\n",
    n, '"$streams_opened"', rb, rs, rss, us
}'
exit $failed
