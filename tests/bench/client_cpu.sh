#!/usr/bin/env bash
# Client CPU per request, side by side in one run, against one barrage-target:
#   bare_grpc_client  the floor: async gRPC C++, one channel, 32 calls in flight
#   h2load            nghttp2's HTTP/2 load tool posting a pre-framed gRPC body
#   locust            Locust + grpcio, 32 users, no wait (Python, gevent)
#   barrage           `barrage run -q -u 32` on unary_nolog.js (skipped if not built)
# For each: requests, wall seconds, CPU seconds (user+sys of the client's whole
# process tree, from /usr/bin/time), CPU µs per request and its ratio to the
# bare client. Only loopback: the target listens on 127.0.0.1, on a free port.
#
#   client_cpu.sh [--duration 10s] [--requests N] [--concurrency 32]
#                 [--bin-dir build/bin] [--no-pin]
# --requests N makes the bare client and h2load stop after N calls; Locust and
# barrage only stop on time, so they always run --duration.
#
# Pinning: with 2+ cores the target runs on CPU 0 (one server thread) and every
# client, in turn, on CPU 1, so no client competes with the server for a core
# and each gets the same single core. CPU per request is what is compared;
# requests per second also depend on the server. --no-pin turns this off.
#
# Exit status: 0 when every client that ran completed requests, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
duration=10s requests="" concurrency=32 bin_dir="$repo/build/bin" pin=1
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --no-pin) pin=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "client_cpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in /usr/bin/time h2load /usr/bin/locust; do
  command -v "$tool" >/dev/null || { echo "client_cpu.sh: $tool not found (scripts/setup.sh)" >&2; exit 2; }
done
for bin in barrage-target bare_grpc_client; do
  [[ -x "$bin_dir/$bin" ]] || { echo "client_cpu.sh: $bin_dir/$bin not built" >&2; exit 2; }
done

work=$(mktemp -d /tmp/barrage_client_cpu.XXXXXX)
target_pid=""
cleanup() {
  if [[ -n "$target_pid" ]]; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

server_pin=() client_pin=()
if ((pin)) && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
  target_threads=1
else
  pin=0
  target_threads=$(nproc)
fi

# shellcheck source=tests/bench/target.sh
source "$here/target.sh"
start_target client_cpu.sh "$target_threads" "${server_pin[@]}"

echo "client_cpu: target $address (pinned: $([[ $pin == 1 ]] && echo "server CPU 0, clients CPU 1" || echo no))," \
     "concurrency $concurrency, $([[ -n $requests ]] && echo "$requests requests (bare, h2load) / ")$duration"

# Runs a client under /usr/bin/time; sets cpu (user+sys seconds of the process
# tree) and wall (seconds). Output goes to $work/$name.out and .err.
measure() {
  local name=$1
  shift
  local start end
  start=$(date +%s.%N)
  local rc=0
  /usr/bin/time -f '%U %S' -o "$work/$name.time" "${client_pin[@]}" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  end=$(date +%s.%N)
  cpu=$(awk '{ print $1 + $2 }' "$work/$name.time" | tail -1)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  return $rc
}

declare -A result_requests result_cpu result_wall result_note
clients=()
failed=0

record() {  # name requests
  local name=$1 n=$2
  clients+=("$name")
  result_requests[$name]=$n
  result_cpu[$name]=$cpu
  result_wall[$name]=$wall
  if [[ -z "$n" || "$n" == 0 ]]; then
    result_note[$name]="no requests completed; see below"
    failed=1
    echo "--- $name stdout/stderr:" >&2
    tail -20 "$work/$name.out" "$work/$name.err" >&2 || true
  fi
}

# 1. The bare gRPC C++ client.
bare_args=(--target "$address" --concurrency "$concurrency")
if [[ -n "$requests" ]]; then bare_args+=(--requests "$requests"); else bare_args+=(--duration "$duration"); fi
measure bare_grpc "$bin_dir/bare_grpc_client" "${bare_args[@]}" || true
record bare_grpc "$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$work/bare_grpc.out")"

# 1b. The same with one connection per in-flight call: k6's model, where
# every VU's client.connect() opens its own connection. barrage must follow
# it, so this is the floor for a k6-style client.
measure bare_grpc_per_vu "$bin_dir/bare_grpc_client" "${bare_args[@]}" --channels "$concurrency" || true
record bare_grpc_per_vu "$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$work/bare_grpc_per_vu.out")"

# 2. h2load.
h2_args=(--address "$address" --concurrency "$concurrency")
if [[ -n "$requests" ]]; then h2_args+=(--requests "$requests"); else h2_args+=(--duration "$duration"); fi
measure h2load "$here/h2load_sayhello.sh" "${h2_args[@]}" || true
record h2load "$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$work/h2load.out")"

# 3. Locust (Debian's, on /usr/bin/python3), run from the work dir so it
# leaves nothing behind.
measure locust bash -c 'cd "$1" && shift && exec "$@"' _ "$work" \
  /usr/bin/locust -f "$here/locustfile.py" --headless -u "$concurrency" -r 1000 -t "$duration" \
  --host "$address" --only-summary || true
record locust "$(sed -n 's/^locust requests=\([0-9]*\).*/\1/p' "$work/locust.out")"

# 4. barrage, once it exists.
if [[ -x "$bin_dir/barrage" ]]; then
  rc=0
  # Pinned to one CPU, one worker thread, as the bare client has.
  barrage_threads=()
  [[ $pin == 1 ]] && barrage_threads=(--threads 1)
  measure barrage "$bin_dir/barrage" run -q "${barrage_threads[@]}" -u "$concurrency" -d "$duration" -e "TARGET=$address" \
    --summary-export "$work/barrage.json" "$here/unary_nolog.js" || rc=$?
  n=""
  if [[ -s "$work/barrage.json" ]]; then
    n=$(jq -r '(.metrics.grpc_req_duration.count // .metrics.iterations.count // 0) | floor' \
      "$work/barrage.json" 2>/dev/null || echo "")
  fi
  record barrage "$n"
  if ((rc != 0)) && [[ -z "${result_note[barrage]:-}" ]]; then
    result_note[barrage]="exit code $rc (thresholds crossed?)"
  fi
else
  echo "client_cpu: barrage skipped: $bin_dir/barrage is not built yet"
fi

# The table, then one parsable line per client.
bare_us=$(awk -v c="${result_cpu[bare_grpc]}" -v n="${result_requests[bare_grpc]:-0}" \
  'BEGIN { if (n > 0) printf "%.3f", c * 1e6 / n; else print 0 }')
printf '%-10s %10s %8s %10s %8s %12s %8s  %s\n' client requests seconds req/s cpu_s cpu_us/req x_bare note
for name in "${clients[@]}"; do
  n=${result_requests[$name]:-0}
  awk -v name="$name" -v n="${n:-0}" -v c="${result_cpu[$name]}" -v w="${result_wall[$name]}" \
      -v bare="$bare_us" -v note="${result_note[$name]:-}" 'BEGIN {
    us = n > 0 ? c * 1e6 / n : 0
    ratio = (bare > 0 && us > 0) ? us / bare : 0
    printf "%-10s %10d %8.2f %10.0f %8.2f %12.2f %8.2f  %s\n", name, n, w, (w > 0 ? n / w : 0), c, us, ratio, note
  }'
done
for name in "${clients[@]}"; do
  n=${result_requests[$name]:-0}
  awk -v name="$name" -v n="${n:-0}" -v c="${result_cpu[$name]}" -v w="${result_wall[$name]}" \
      -v bare="$bare_us" 'BEGIN {
    us = n > 0 ? c * 1e6 / n : 0
    printf "client_cpu client=%s requests=%d seconds=%.3f cpu_seconds=%.3f cpu_us_per_req=%.2f ratio_to_bare=%.2f\n",
      name, n, w, c, us, (bare > 0 && us > 0) ? us / bare : 0
  }'
done
exit $failed
