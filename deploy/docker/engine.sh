#!/usr/bin/env bash
# Picks the container engine for deploy/docker/build-image.sh and
# tests/deploy/image_test.py, and the podman settings some hosts need.
#
#   source deploy/docker/engine.sh && barrage_engine   # sets ENGINE, may export CONTAINERS_CONF
#   bash deploy/docker/engine.sh                       # prints ENGINE=... and CONTAINERS_CONF=...
#
# docker where a Docker engine answers (`docker info`), else podman; set
# BARRAGE_ENGINE=docker or =podman to choose. Neither: a message naming
# what is missing on stderr, status 1.
#
# For podman, unless CONTAINERS_CONF is set already, a containers.conf of
# our own (passed through CONTAINERS_CONF, /etc is not touched) with:
# - runtime = "runc" on hosts whose cgroups are not v2 alone: crun,
#   podman's first choice, fails there ("cgroups in hybrid mode not
#   supported"); runc works;
# - default_ulimits at this shell's hard limits (nproc no higher than the
#   kernel's pid_max): podman's own defaults raise nofile and nproc above
#   them, which fails without CAP_SYS_RESOURCE ("setrlimit `RLIMIT_NOFILE`:
#   Operation not permitted").

barrage_engine() {
  local choice=${BARRAGE_ENGINE:-}
  ENGINE=
  if [ -z "$choice" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      choice=docker
    elif command -v podman >/dev/null 2>&1; then
      choice=podman
    else
      local why="no container engine: podman is not installed (scripts/setup.sh installs it)"
      if command -v docker >/dev/null 2>&1; then
        local said
        said=$(docker info 2>&1 | grep -v '^ *$' | tail -1) || true
        why="$why, and docker is only a client here (docker info: $said)"
      else
        why="$why, and there is no docker"
      fi
      echo "$why" >&2
      return 1
    fi
  fi
  case "$choice" in
    docker|podman) ;;
    *) echo "BARRAGE_ENGINE=$choice: expected docker or podman" >&2; return 1 ;;
  esac
  if ! command -v "$choice" >/dev/null 2>&1; then
    echo "BARRAGE_ENGINE=$choice, but $choice is not installed" >&2
    return 1
  fi
  ENGINE=$choice
  if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    local conf="${TMPDIR:-/tmp}/barrage-containers-$(id -u).conf"
    local nofile nproc ulimits=()
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    # podman (containers/common) first sets its own nproc to the kernel's
    # pid_max, lowering it where pid_max is below the hard limit, and cannot
    # raise it back for the container without CAP_SYS_RESOURCE.
    local pid_max
    pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo unlimited)
    if [ "$pid_max" != unlimited ] && { [ "$nproc" = unlimited ] || [ "$pid_max" -lt "$nproc" ]; }; then
      nproc=$pid_max
    fi
    [ "$nofile" != unlimited ] && ulimits+=("\"nofile=$nofile:$nofile\"")
    [ "$nproc" != unlimited ] && ulimits+=("\"nproc=$nproc:$nproc\"")
    {
      echo "# Written by deploy/docker/engine.sh for Barrage's image build and tests."
      echo "[containers]"
      echo "default_ulimits = [$(IFS=,; echo "${ulimits[*]}")]"
      echo "[engine]"
      if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ] && command -v runc >/dev/null 2>&1; then
        echo 'runtime = "runc"'
      fi
    } >"$conf.$$"
    mv -f "$conf.$$" "$conf"
    export CONTAINERS_CONF=$conf
  fi
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  barrage_engine
  echo "ENGINE=$ENGINE"
  echo "CONTAINERS_CONF=${CONTAINERS_CONF:-}"
fi
