#!/usr/bin/env bash
# Builds a sanitizer tree and runs the threaded and integration tests in it:
#   scripts/sanitize.sh thread              # ThreadSanitizer, in build-tsan/
#   scripts/sanitize.sh address             # ASan + UBSan, in build-asan/
#   scripts/sanitize.sh thread -R Coordinator   # more arguments go to ctest
# Too slow for CI's budget (a TSan tree is a full build of its own and the
# tests run 5-15 times slower): run it by hand after changing threaded code.
# Only the programs the tests need are built (-j JOBS, default nproc).
# The sanitizers' options reach the binaries the integration tests start
# through the environment; a report makes the process exit 66, so a test
# whose barrage, barrage-agent or barrage-target hits one fails.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
case "$kind" in
  thread) sanitize=thread; dir=${BUILD_DIR:-build-tsan} ;;
  address) sanitize=address,undefined; dir=${BUILD_DIR:-build-asan} ;;
  *) echo "usage: scripts/sanitize.sh thread|address [ctest arguments]" >&2; exit 2 ;;
esac
if [ ! -f scripts/js/node_modules/babel-standalone/babel.min.js ] ||
   [ ! -f scripts/js/node_modules/uplot/dist/uPlot.iife.min.js ]; then
  bash scripts/setup.sh
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBARRAGE_BUILD_TESTS=ON \
  -DBARRAGE_SANITIZE="$sanitize" "${launcher[@]}" ${CMAKE_ARGS:-} >/dev/null
targets=(barrage barrage-agent barrage-target barrage_common_test barrage_agent_test barrage_agent_grpc_test
         barrage_controller_test barrage_dashboard_test barrage_integration_test)
cmake --build "$dir" -j "${JOBS:-$(nproc)}" --target "${targets[@]}"

# Every sanitized process writes its reports here (log_path), the binaries
# the integration tests start included: a local agent's exit status is not
# always looked at, its reports are.
reports=$PWD/$dir/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
supp=$PWD/tests
if [ "$kind" = thread ]; then
  # second_deadlock_stack: both stacks of a lock-order inversion.
  export TSAN_OPTIONS="suppressions=$supp/tsan.supp:exitcode=66:second_deadlock_stack=1:history_size=4:log_path=$reports/tsan${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
  # ignore_noninstrumented_modules: no reports from inside Debian's gRPC,
  # protobuf and Abseil themselves (tests/tsan.supp says why).
  export TSAN_OPTIONS="ignore_noninstrumented_modules=1:$TSAN_OPTIONS"
  # The tests whose code runs threads of ours: the coordinator and agent
  # sessions (control plane, distributed runs, Ctrl-C), the worker pools and
  # event loops (engine, streams, timers), shared channels, the dashboard's
  # and the exporter's HTTP servers. The other suites run the same threads
  # again; they are left out for time.
  default=(-R '^(CoordinatorTest|ControlPlaneTest|NonsenseTest|DistributedTest|DashboardTest|PrometheusTest|PrometheusExporterTest|ConnectionControlTest|RobustnessTest|StreamTest|RunTest|EngineTest|ConnectionTest|StreamCallTest|History)[.]')
else
  export ASAN_OPTIONS="exitcode=66:log_path=$reports/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=66:log_path=$reports/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  default=(-L 'unit|integration')
fi
if [ $# -eq 0 ]; then set -- "${default[@]}"; fi
# Timeouts: the tests' own TIMEOUT properties, scaled in a sanitizer tree
# (tests/CMakeLists.txt).
status=0
ctest --test-dir "$dir" -j "${JOBS:-$(nproc)}" --output-on-failure "$@" || status=$?
if [ -n "$(ls -A "$reports")" ]; then
  echo "sanitizer reports (full text in $reports):" >&2
  grep -h '^SUMMARY' "$reports"/* | sort | uniq -c >&2 || true
  status=1
fi
exit $status
