#!/usr/bin/env bash
# Client-side load balancing (issue 16 item 2): how evenly dns select
# roundRobin spreads calls over three barrage-targets behind one name, and
# what resolving the name costs per call.
#   Three barrage-targets on 127.0.0.1, 127.0.0.2, 127.0.0.3 (one port); the
#   name backends.test resolves to all three through a hosts file that
#   barrage sees as /etc/hosts (unshare -rm, a user and mount namespace).
#   scripts/examples/load_balancing.js makes --calls calls from --vus VUs
#   (one connection each); each target says it answered (x-served-by).
# Prints the calls each target got, the largest deviation from an even
# third, and the user+sys CPU per call of `barrage run` (/usr/bin/time)
# for the name with roundRobin, the name with select first (one address),
# and one target's IP address (no resolution), side by side.
# --callgrind: instead of CPU time, instructions per call (valgrind's
# callgrind, all threads of `barrage run`, 1 VU, --threads 1): the count at
# 3,000 calls minus the count at 1,000, over 2,000; load-independent.
#   lb_spread.sh [--calls 30000] [--vus 4] [--callgrind] [--bin-dir build/bin]
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS=30000 VUS=4 BIN=${BUILD_DIR:-build}/bin CALLGRIND=0
while [ $# -gt 0 ]; do
  case $1 in
    --calls) CALLS=$2; shift 2 ;;
    --vus) VUS=$2; shift 2 ;;
    --callgrind) CALLGRIND=1; shift ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--calls N] [--vus N] [--callgrind] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/barrage" ] || { echo "lb_spread: $BIN/barrage is missing; build first" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
bin_dir=$BIN
# shellcheck source=tests/bench/target.sh
source tests/bench/target.sh
start_one() {  # $1: listen address, $2: its number
  target_listen=$1 target_log=target-$2 start_target "lb_spread (target on $1)" ""
  pids+=("$target_pid")
}
start_one 127.0.0.1:0 1
port=${address##*:}
start_one "127.0.0.2:$port" 2
start_one "127.0.0.3:$port" 3
printf '127.0.0.1 localhost\n127.0.0.1 backends.test\n127.0.0.2 backends.test\n127.0.0.3 backends.test\n' >"$work/hosts"
# Exit 77 (ctest: skipped) where namespaces are not allowed (e.g. a
# container whose seccomp profile refuses unshare).
if ! unshare -rm sh -c 'mount --bind "$0" /etc/hosts && getent hosts backends.test >/dev/null' "$work/hosts" 2>"$work/unshare.err"; then
  echo "lb_spread: skipped: unshare -rm with a bind-mounted /etc/hosts is not allowed here: $(cat "$work/unshare.err")" >&2
  exit 77
fi
cp scripts/examples/load_balancing.js "$work/"
cp -rL scripts/examples/definitions "$work/"
cd "$work"

run() {  # $1: target; the rest: more flags. Leaves points.json and time.
  target=$1; shift
  /usr/bin/time -f '%U %S' -o time unshare -rm sh -c 'mount --bind "$0" /etc/hosts && shift && exec "$@"' \
    "$work/hosts" -- "$BIN/barrage" run -q --summary-mode disabled -u "$VUS" -i "$CALLS" --out json=points.json \
    -e "TARGET=$target" "$@" load_balancing.js >/dev/null
}
cpu_per_call() { awk -v n="$CALLS" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' time; }

if [ "$CALLGRIND" = 1 ]; then
  instructions() {  # $1: target, $2: calls, the rest: flags
    target=$1 n=$2; shift 2
    unshare -rm sh -c 'mount --bind "$0" /etc/hosts && shift && exec "$@"' "$work/hosts" -- \
      valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN/barrage" run -q --summary-mode disabled \
      --threads 1 -u 1 -i "$n" -e "TARGET=$target" "$@" load_balancing.js 2>&1 |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  }
  per_call() {
    target=$1; shift
    a=$(instructions "$target" 1000 "$@"); b=$(instructions "$target" 3000 "$@")
    echo $(( (b - a) / 2000 ))
  }
  echo "instructions per call: backends.test roundRobin $(per_call "backends.test:$port")," \
    "backends.test first $(per_call "backends.test:$port" --dns select=first), 127.0.0.1 $(per_call "127.0.0.1:$port")"
  exit 0
fi

run "backends.test:$port"
python3 - "$CALLS" <<'PY'
import collections, json, sys
calls = int(sys.argv[1])
served = collections.Counter()
for line in open('points.json'):
    j = json.loads(line)
    if j.get('type') == 'Point' and j['metric'] == 'served':
        served[j['data']['tags']['backend']] += 1  # raw samples: one Point per call
even = calls / 3
for backend, n in sorted(served.items()):
    print(f"{backend}: {n} calls ({(n - even) / even * 100:+.2f} % from even)")
print(f"max deviation from an even third: {max(abs(n - even) for n in served.values()) / even * 100:.2f} % over {sum(served.values())} calls")
PY
rr=$(cpu_per_call)
run "backends.test:$port" --dns select=first
first=$(cpu_per_call)
run "127.0.0.1:$port"
direct=$(cpu_per_call)
echo "CPU per call (user+sys of barrage run / calls): backends.test roundRobin ${rr} us, backends.test first ${first} us, 127.0.0.1 ${direct} us"
