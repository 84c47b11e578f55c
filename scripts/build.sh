#!/usr/bin/env bash
# Configures and builds Barrage into build/ (binaries in build/bin/).
# BUILD_DIR and CMAKE_ARGS may be set, e.g. for a sanitizer build:
#   BUILD_DIR=build-asan CMAKE_ARGS=-DBARRAGE_SANITIZE=address,undefined scripts/build.sh
# BUILD_TESTS=OFF builds only barrage, barrage-agent and barrage-target (no
# tests, no GoogleTest: what `scripts/setup.sh build` installs is enough).
# DEBUG_INFO=OFF compiles without -g. INSTALL_DIR=DIR then installs those
# three into DIR/bin without debug information (deploy/docker/Dockerfile's
# builder does all three).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f scripts/js/node_modules/babel-standalone/babel.min.js ] ||
   [ ! -f scripts/js/node_modules/uplot/dist/uPlot.iife.min.js ]; then
  echo "build: babel-standalone or uplot (scripts/js) is missing; running scripts/setup.sh first" >&2
  bash scripts/setup.sh
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} \
  -DBARRAGE_BUILD_TESTS=${BUILD_TESTS:-ON} -DBARRAGE_DEBUG_INFO=${DEBUG_INFO:-ON} ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
if [ -n "${INSTALL_DIR:-}" ]; then
  cmake --install "$BUILD_DIR" --prefix "$INSTALL_DIR" >/dev/null
  # RelWithDebInfo's debug information is nine tenths of their size; the
  # symbol table stays, so stack traces and profiles still name functions.
  for f in "$INSTALL_DIR"/bin/*; do objcopy --strip-debug "$f"; done
fi
