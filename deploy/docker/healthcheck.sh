#!/bin/bash
# The image's HEALTHCHECK (Docker; Kubernetes uses the manifests' probes).
# Healthy when the binaries still load (every shared library is there) and,
# if BARRAGE_HEALTH_ADDR=HOST:PORT is set, when that address accepts a TCP
# connection, e.g. the controller's --listen or --prometheus port or
# barrage-target's --listen port:
#   docker run -e BARRAGE_HEALTH_ADDR=127.0.0.1:9001 barrage:0.1.0 barrage-target --listen 0.0.0.0:9001
set -euo pipefail
barrage version >/dev/null
if [ -n "${BARRAGE_HEALTH_ADDR:-}" ]; then
  host=${BARRAGE_HEALTH_ADDR%:*}
  port=${BARRAGE_HEALTH_ADDR##*:}
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port"
fi
