#!/usr/bin/env bash
# Installs everything Barrage needs to build, test and benchmark on a fresh
# Debian 12 (bookworm) machine. Idempotent: running it twice is harmless.
#   scripts/setup.sh         everything (CI, developers)
#   scripts/setup.sh build   only what building barrage, barrage-agent and
#                            barrage-target needs (the image's builder, with
#                            BUILD_TESTS=OFF scripts/build.sh)
# The Dockerfile runs this same script, so the image and CI build alike.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
case "$WHAT" in
  all|build) ;;
  *) echo "usage: scripts/setup.sh [build]   (no argument: everything)" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Build toolchain and libraries (all from Debian).
BUILD_PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libgrpc++-dev libprotobuf-dev libprotoc-dev protobuf-compiler protobuf-compiler-grpc libssl-dev zlib1g-dev
  libcurl4-openssl-dev libgoogle-perftools-dev
  duktape-dev
  libboost-dev libboost-context-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  nodejs npm
)
# The tests' libraries, peers for benchmarks and servers for integration
# tests; python3-yaml and iproute2 for the deploy tests (tests/deploy:
# manifests, network namespaces), and for its container test
# (image_test.py) podman with runc (crun, podman's first choice, fails on
# hosts with hybrid cgroups), netavark and aardvark-dns (a network whose
# containers find each other by name), iptables (netavark's firewall), and
# debootstrap (deploy/docker/build-image.sh makes the Debian base images
# with it where no image registry can be reached); clang with libFuzzer's
# runtime for tests/fuzz/run.sh; chromium for the web dashboard's browser
# tests (tests/browser).
TEST_PKGS=(
  libgtest-dev libgmock-dev
  nghttp2-client python3-locust python3-grpcio python3-grpc-tools prometheus procps iproute2 jq time openssl curl
  python3-yaml
  podman runc netavark aardvark-dns iptables debootstrap
  clang-14 libclang-rt-14-dev
  chromium
)
if [ "$WHAT" = build ]; then TEST_PKGS=(); fi

want=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done
# node and npm may come from outside Debian on some machines; skip them when present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  want=("${want[@]/nodejs}"); want=("${want[@]/npm}")
fi
filtered=()
for p in "${want[@]}"; do [ -n "$p" ] && filtered+=("$p"); done
if [ "${#filtered[@]}" -gt 0 ]; then
  echo "setup: installing ${filtered[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${filtered[@]}"
fi

# babel-standalone 6 and uPlot (the web dashboard's charts), pinned by
# scripts/js/package-lock.json; embedded into the barrage binary at build time.
(cd scripts/js && npm ci --no-audit --no-fund --loglevel=error)
echo "setup: done"
