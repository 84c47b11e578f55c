#!/usr/bin/env bash
# The cost of --out (every sample forwarded and written, spec §4.6): the same
# fixed number of unary calls (unary_nolog.js as shared iterations), run by
# `barrage run` with no output, --out json, --out json=….gz and --out csv, side
# by side against one barrage-target. For each: CPU seconds of barrage's
# process (user+sys, /usr/bin/time), CPU µs per request, and the ratio to the
# run without an output. Each is run --repeat times and the lowest CPU kept
# (the machine is shared; the lowest is the least disturbed).
#
#   raw_output.sh [--requests 20000] [--vus 32] [--repeat 3] [--agents N]
#                 [--callgrind] [--bin-dir build/bin]
# --agents N runs N local agents (the samples then cross the control plane
# over TCP); the CPU is then barrage's whole process tree.
# --callgrind counts instructions instead (valgrind; independent of the
# machine's load): barrage (embedded, one worker) at --requests and at three
# times as many, for no output and for each output; the difference over the
# extra requests is the instructions per request, start-up left out.
#
# Pinning: with 2+ cores the target runs on CPU 0 and barrage on CPU 1
# (--threads 1), as client_cpu.sh does.
# Exit status: 0 when every run completed all its requests and wrote one
# grpc_reqs point per call, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
requests=20000 vus=32 repeat=3 agents=0 callgrind=0 bin_dir="$repo/build/bin"
while (($#)); do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --vus) vus=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --callgrind) callgrind=1; shift ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "raw_output.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v /usr/bin/time >/dev/null || { echo "raw_output.sh: /usr/bin/time not found (scripts/setup.sh)" >&2; exit 2; }
for bin in barrage barrage-target barrage-agent; do
  [[ -x "$bin_dir/$bin" ]] || { echo "raw_output.sh: $bin_dir/$bin not built" >&2; exit 2; }
done

work=$(mktemp -d /tmp/barrage_raw_output.XXXXXX)
target_pid=""
cleanup() {
  if [[ -n "$target_pid" ]]; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

server_pin=() client_pin=() threads=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
  threads=(--threads 1)
fi
# shellcheck source=tests/bench/target.sh
source "$here/target.sh"
start_target raw_output.sh 1 "${server_pin[@]}"

mkdir -p "$work/definitions"
cp "$here/definitions/hello.proto" "$work/definitions/"
sed "s/export const options = .*/export const options = { scenarios: { s: { executor: 'shared-iterations', vus: $vus, iterations: $requests, maxDuration: '10m' } } };/" \
  "$here/unary_nolog.js" >"$work/unary.js"
agent_args=()
((agents > 0)) && agent_args=(--agents "$agents")

out_args() {  # kind -> the --out flags, and $file
  file=""
  out=()
  case $1 in
    none) ;;
    json) file="$work/o.json"; out=(--out "json=$file") ;;
    json.gz) file="$work/o.json.gz"; out=(--out "json=$file") ;;
    csv) file="$work/o.csv"; out=(--out "csv=$file") ;;
  esac
}

if ((callgrind)); then
  command -v valgrind >/dev/null || { echo "raw_output.sh: valgrind not found" >&2; exit 2; }
  script_for() {  # n -> $work/unary_n.js
    sed "s/export const options = .*/export const options = { scenarios: { s: { executor: 'shared-iterations', vus: $vus, iterations: $1, maxDuration: '10m' } } };/" \
      "$here/unary_nolog.js" >"$work/unary_$1.js"
  }
  script_for "$requests"
  script_for $((3 * requests))
  echo "raw_output --callgrind: target $address, embedded agent with one worker, $requests and $((3 * requests)) requests, $vus VUs"
  printf '%-10s %16s %16s %14s %8s\n' output instr_small instr_large instr_per_req ratio
  base=""
  for kind in none json json.gz csv; do
    out_args "$kind"
    declare -A ir=()
    for n in "$requests" $((3 * requests)); do
      (cd "$work" && "${client_pin[@]}" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$bin_dir/barrage" run -q --threads 1 -e "TARGET=$address" "${out[@]}" "unary_$n.js" \
        >"$work/run.out" 2>"$work/run.err") || { echo "raw_output.sh: $kind at $n failed" >&2; tail -5 "$work/run.err" >&2; exit 1; }
      ir[$n]=$(sed -n 's/^summary: *//p' "$work/cg.out")
      [[ -n "${ir[$n]}" ]] || { echo "raw_output.sh: no instruction count from callgrind ($kind, $n)" >&2; exit 1; }
    done
    per=$(awk -v a="${ir[$requests]}" -v b="${ir[$((3 * requests))]}" -v n="$requests" 'BEGIN { printf "%.0f", (b - a) / (2 * n) }')
    [[ $kind == none ]] && base=$per
    printf '%-10s %16s %16s %14s %8.2f\n' "$kind" "${ir[$requests]}" "${ir[$((3 * requests))]}" "$per" \
      "$(awk -v p="$per" -v b="$base" 'BEGIN { print p / b }')"
  done
  exit 0
fi

echo "raw_output: target $address, $requests requests, $vus VUs, $( ((agents > 0)) && echo "$agents local agents" || echo embedded agent)," \
     "best of $repeat"
printf '%-10s %10s %14s %8s %12s\n' output cpu_s cpu_us_per_req ratio file_bytes
failed=0
base=""
for kind in none json json.gz csv; do
  best=""
  for ((i = 0; i < repeat; i++)); do
    out_args "$kind"
    rc=0
    (cd "$work" && /usr/bin/time -f '%U %S' -o "$work/time" "${client_pin[@]}" "$bin_dir/barrage" run -q \
      "${threads[@]}" "${agent_args[@]}" -e "TARGET=$address" --summary-export "$work/summary.json" \
      "${out[@]}" unary.js >"$work/run.out" 2>"$work/run.err") || rc=$?
    cpu=$(awk '{ print $1 + $2 }' "$work/time" | tail -1)
    done_reqs=$(sed -n 's/.*"grpc_reqs": *{ *"count": *\([0-9]*\).*/\1/p' "$work/summary.json" | head -1)
    [[ -z "$done_reqs" ]] && done_reqs=$(python3 -c "import json;print(json.load(open('$work/summary.json'))['metrics']['grpc_reqs']['count'])" 2>/dev/null || echo 0)
    if ((rc != 0)) || [[ "$done_reqs" != "$requests" ]]; then
      echo "raw_output.sh: $kind: exit $rc, $done_reqs of $requests requests" >&2
      tail -5 "$work/run.err" >&2
      failed=1
    fi
    if [[ -n "$file" ]]; then
      points=$(case $kind in
        json) grep -c '"metric":"grpc_reqs","type":"Point"' "$file" ;;
        json.gz) zcat "$file" | grep -c '"metric":"grpc_reqs","type":"Point"' ;;
        csv) grep -c '^grpc_reqs,' "$file" ;;
      esac) || points=0
      if [[ "$points" != "$requests" ]]; then
        echo "raw_output.sh: $kind: $points grpc_reqs points for $requests requests" >&2
        failed=1
      fi
      bytes=$(stat -c %s "$file")
    else
      bytes=0
    fi
    if [[ -z "$best" ]] || awk -v a="$cpu" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$cpu best_bytes=$bytes; fi
  done
  [[ $kind == none ]] && base=$best
  printf '%-10s %10.2f %14.1f %8.2f %12d\n' "$kind" "$best" \
    "$(awk -v c="$best" -v n="$requests" 'BEGIN { print c * 1e6 / n }')" \
    "$(awk -v c="$best" -v b="$base" 'BEGIN { print (b > 0 ? c / b : 0) }')" "$best_bytes"
done
exit $failed
