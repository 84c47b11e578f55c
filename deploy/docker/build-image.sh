#!/usr/bin/env bash
# Builds deploy/docker/Dockerfile into an image, with docker where a Docker
# engine answers and podman otherwise (deploy/docker/engine.sh):
#   deploy/docker/build-image.sh [TAG]          (default barrage:0.1.0)
#
# - The base images, debian:bookworm and debian:bookworm-slim, are used as
#   they are when present, pulled when missing, and made here when they
#   cannot be pulled (no image registry reachable): debootstrap
#   --variant=minbase from the Debian mirror this host's apt uses, then
#   `import` under those names (the -slim one without documentation, man
#   pages and locales, as Debian's own). That needs root and debootstrap.
# - The host's extra CA certificates (/usr/local/share/ca-certificates/,
#   e.g. an HTTPS-intercepting proxy's) are trusted in the builder stage
#   only (deploy/docker/ca-certificates/README.md).
# - The build's RUN steps use the host's network (--network host), so they
#   reach what the host's apt and npm reach, the way the host does.
# Layers are reused from earlier builds: only what changed is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-barrage:0.1.0}
# shellcheck source=engine.sh
. deploy/docker/engine.sh
barrage_engine || exit 1

log() { echo "build-image: $*" >&2; }
seconds() { echo $(($(date +%s) - $1)); }

rootfs=""
staged=()
cleanup() {
  if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
    # debootstrap mounts /proc and /sys in the tree while it works; never
    # delete through a mount that an interrupted run left behind.
    findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$rootfs"
  fi
  if [ "${#staged[@]}" -gt 0 ]; then rm -f "${staged[@]}"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

have_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# The URL this host's apt fetches SUITE's main from, e.g.
# http://deb.debian.org/debian for bookworm.
apt_mirror() {
  apt-cache policy 2>/dev/null | awk -v s="$1/main" '$3 == s && $2 ~ /^https?:/ {print $2; exit}'
}

make_bases() {
  local missing=("$@")
  if [ "$(id -u)" != 0 ]; then
    log "cannot pull ${missing[*]} and cannot make them: debootstrap needs root"; exit 1
  fi
  if ! command -v debootstrap >/dev/null; then
    log "cannot pull ${missing[*]} and cannot make them: debootstrap is missing (scripts/setup.sh installs it)"; exit 1
  fi
  local mirror security
  mirror=$(apt_mirror bookworm)
  mirror=${mirror:-http://deb.debian.org/debian}
  security=$(apt_mirror bookworm-security)
  security=${security:-http://deb.debian.org/debian-security}
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/barrage-debootstrap-XXXXXX")
  log "making ${missing[*]}: debootstrap --variant=minbase bookworm from $mirror"
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"
    log "debootstrap failed"; exit 1
  fi
  rm -f "$rootfs.log"

  # apt as in Debian's images: the three suites, no package cache, no
  # translations; and this host's settings an image's apt needs to reach
  # the same mirror (an expired snapshot's dates, a proxy).
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  local key value host_conf=""
  for key in Acquire::Check-Valid-Until Acquire::http::Proxy Acquire::https::Proxy; do
    value=$(apt-config dump "$key" 2>/dev/null | awk -v k="$key" '$1 == k {print $2}' | tr -d '";' | head -1)
    [ -n "$value" ] && host_conf+="$key \"$value\";"$'\n'
  done
  [ -n "$host_conf" ] && printf '%s' "$host_conf" >"$rootfs/etc/apt/apt.conf.d/50host"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
  : >"$rootfs/etc/resolv.conf"; : >"$rootfs/etc/hostname"

  local changes=(--change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  if [[ " ${missing[*]} " == *" debian:bookworm "* ]]; then
    tar --numeric-owner -C "$rootfs" -c . | "$ENGINE" import "${changes[@]}" - debian:bookworm >/dev/null
    log "imported debian:bookworm"
  fi
  if [[ " ${missing[*]} " == *" debian:bookworm-slim "* ]]; then
    # Debian's -slim: dpkg leaves out documentation, man pages and locales.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
    rm -rf "$rootfs"/usr/share/{groff,info,linda,man}/* "$rootfs"/usr/share/lintian/overrides/*
    find "$rootfs/usr/share/doc" "$rootfs/usr/share/locale" -mindepth 1 -type d -empty -delete
    tar --numeric-owner -C "$rootfs" -c . | "$ENGINE" import "${changes[@]}" - debian:bookworm-slim >/dev/null
    log "imported debian:bookworm-slim"
  fi
  cleanup
  rootfs=""
}

# The base images, made at most once at a time on this machine.
t0=$(date +%s)
exec 9>"${TMPDIR:-/tmp}/barrage-base-images.lock"
flock 9
missing=()
for base in debian:bookworm debian:bookworm-slim; do
  have_image "$base" && continue
  if timeout 300 "$ENGINE" pull "docker.io/library/$base" >/dev/null 2>&1; then
    log "pulled $base"
  else
    missing+=("$base")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "cannot pull ${missing[*]} (no image registry reachable?): making them here"
  make_bases "${missing[@]}"
fi
flock -u 9
log "base images ready ($(seconds "$t0") s)"

# The host's extra CA certificates, for the builder stage only.
while IFS= read -r -d '' crt; do
  dest="deploy/docker/ca-certificates/host-$(echo "${crt#/usr/local/share/ca-certificates/}" | tr / -)"
  cp "$crt" "$dest"
  staged+=("$dest")
done < <(find /usr/local/share/ca-certificates -name '*.crt' -type f -print0 2>/dev/null | sort -z)
[ "${#staged[@]}" -gt 0 ] && log "trusting ${#staged[@]} CA certificate(s) of this host in the builder stage"

t1=$(date +%s)
args=(build --network host -f deploy/docker/Dockerfile -t "$TAG")
# podman's default OCI format has no HEALTHCHECK; Docker's format keeps it.
[ "$ENGINE" = podman ] && args+=(--format docker)
log "$ENGINE ${args[*]} ."
"$ENGINE" "${args[@]}" .
size=$("$ENGINE" image inspect --format '{{.Size}}' "$TAG")
log "built $TAG with $ENGINE in $(seconds "$t1") s: $((size / 1000000)) MB"
