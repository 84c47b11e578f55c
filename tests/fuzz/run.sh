#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in tests/fuzz with libFuzzer, under
# ASan and UBSan, starting from the corpus in the tree (corpus/<target>/).
#   tests/fuzz/run.sh [--seconds N] [--jobs J] [target ...]
# Builds build-fuzz with clang (BARRAGE_FUZZ=ON) the first time, then runs
# each target for N seconds (default 20). New interesting inputs are kept in
# build-fuzz/corpus/<target>/ (copy the good ones into the tree by hand);
# a crash leaves build-fuzz/crashes/<target>/crash-* and makes the script
# exit 1, naming the file to replay with build/bin/<target>_fuzz FILE.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=20
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
# Debian's clang-14 package has clang++-14; the unversioned name comes from
# the "clang" package, which setup.sh does not need.
CLANGXX=$(command -v clang++ || command -v clang++-14 || true)
CLANG=$(command -v clang || command -v clang-14 || true)
[ -n "$CLANGXX" ] && [ -n "$CLANG" ] || { echo "fuzz: clang++ is missing (scripts/setup.sh installs clang-14)" >&2; exit 2; }
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(sed -n 's/^set(BARRAGE_FUZZ_TARGETS \(.*\))$/\1/p' tests/fuzz/CMakeLists.txt))
fi
CC="$CLANG" CXX="$CLANGXX" cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBARRAGE_FUZZ=ON \
  -DBARRAGE_SANITIZE=address,undefined ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target $(printf '%s_fuzz ' "${targets[@]}") >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${targets[@]}"; do
  corpus="$BUILD/corpus/$t" crashes="$BUILD/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  if "$BUILD/bin/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$crashes/" "$corpus" >"$BUILD/$t.log" 2>&1; then
    echo "fuzz $t: ok, $(grep -o 'stat::number_of_executed_units: [0-9]*' "$BUILD/$t.log" | tail -1 | awk '{print $2}')" \
         "runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs"
  else
    failed=1
    echo "fuzz $t: FAILED; the input is in $crashes/, the report in $BUILD/$t.log:" >&2
    grep -E "ERROR|SUMMARY|runtime error" "$BUILD/$t.log" | head -5 >&2
  fi
done
exit $failed
