#!/usr/bin/env bash
# The README's demo: builds Barrage, starts barrage-target on a free loopback
# port and runs the example script against it, printing k6's summary.
# Usage: scripts/demo.sh [script.js] [extra barrage run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
script=${1:-scripts/examples/demo.js}
shift || true
log=$(mktemp)
build/bin/barrage-target --listen 127.0.0.1:0 >"$log" 2>&1 &
target_pid=$!
trap 'kill $target_pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  addr=$(sed -n 's/^barrage-target listening on \(.*\)$/\1/p' "$log")
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "${addr:-}" ]; then echo "demo: barrage-target did not start:" >&2; cat "$log" >&2; exit 1; fi
echo "demo: barrage-target is listening on $addr"
build/bin/barrage run -e TARGET="$addr" "$@" "$script"
