#!/usr/bin/env bash
# Configures and builds Barrage into build/ (binaries in build/bin/).
# BUILD_DIR and CMAKE_ARGS may be set, e.g. for a sanitizer build:
#   BUILD_DIR=build-asan CMAKE_ARGS=-DBARRAGE_SANITIZE=address,undefined scripts/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f scripts/js/node_modules/babel-standalone/babel.min.js ]; then
  echo "build: babel-standalone is missing; running scripts/setup.sh first" >&2
  bash scripts/setup.sh
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
