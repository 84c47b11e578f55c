# Sourced by the benchmark scripts (not run): starting barrage-target.
#
# start_target NAME THREADS [COMMAND PREFIX...]: starts $bin_dir/barrage-target
# on a free loopback port with THREADS threads, behind the prefix (e.g.
# taskset -c 0), its output in $work/target.out and $work/target.err. Sets
# target_pid and address (HOST:PORT); exits 1, naming NAME, if it does not
# come up within 10 s.
start_target() {
  local name=$1 threads=$2
  shift 2
  : >"$work/target.out"  # exists before the background shell opens it
  "$@" "$bin_dir/barrage-target" --listen 127.0.0.1:0 --threads "$threads" \
    >"$work/target.out" 2>"$work/target.err" &
  target_pid=$!
  address=""
  for _ in $(seq 100); do
    address=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$work/target.out" || true)
    [[ -n "$address" ]] && break
    kill -0 "$target_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$address" ]]; then
    echo "$name: barrage-target did not start:" >&2
    cat "$work/target.err" >&2
    exit 1
  fi
}
