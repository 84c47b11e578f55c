#!/usr/bin/env bash
# Benchmark: streams that never authenticate (issue 13, item 5), on loopback.
# A controller (`barrage run --listen`) waits for one agent; silent_streams
# opens N sessions over one connection and says nothing. Prints the
# controller's threads and resident memory before, 5 s into the attack and
# after, and how the sessions ended (refused over the cap, or past the
# hello deadline). Fails when the controller's threads grow by more than 16.
# Usage: tests/bench/preauth_streams.sh [--streams 15000] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
STREAMS=15000
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --streams) STREAMS=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--streams N] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
for b in barrage silent_streams; do
  [ -x "$BIN/$b" ] || { echo "preauth_streams: $BIN/$b is missing; build first" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
printf 'export default () => {};\n' >"$work/t.js"
"$BIN/barrage" run --listen 127.0.0.1:0 --expect-agents 1 --agent-timeout 30s "$work/t.js" 2>"$work/c.err" &
pid=$!
pids+=("$pid")
addr=
for _ in $(seq 200); do
  addr=$(sed -n 's/.*control plane listening on \([0-9.:]*\).*/\1/p' "$work/c.err"); [ -n "$addr" ] && break; sleep 0.05
done
[ -n "$addr" ] || { echo "preauth_streams: the controller did not listen" >&2; cat "$work/c.err" >&2; exit 1; }
state() { awk '/^(Threads|VmRSS):/ {printf "%s %s %s  ", $1, $2, $3}' "/proc/$pid/status"; echo; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$pid/status"; }
echo "controller before:  $(state)"
before=$(threads)
"$BIN/silent_streams" --controller "$addr" --streams "$STREAMS" --deadline 20 >"$work/ends" 2>/dev/null &
spid=$!
pids+=("$spid")
sleep 5
echo "controller at 5 s:  $(state)"
during=$(threads)
wait "$spid" || true
echo "sessions ($STREAMS over one connection) ended:"
sed 's/^/  /' "$work/ends"
if [ "$during" -gt $((before + 16)) ]; then
  echo "preauth_streams: the controller's threads grew from $before to $during" >&2
  exit 1
fi
