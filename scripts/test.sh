#!/usr/bin/env bash
# The README's test command: builds once, checks the layering, then runs
# every test (unit, integration, and each benchmark once at a tiny size)
# with ctest, in parallel, each bounded by its own timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/check_layering.sh
# Sanitizer builds: known third-party leaks are suppressed (tests/lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
ctest --test-dir "${BUILD_DIR:-build}" -j "$(nproc)" --output-on-failure --timeout 600 "$@"
