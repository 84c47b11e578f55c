#!/usr/bin/env bash
# Benchmark: what k6/data's SharedArray costs per VU. N idle VUs (default
# 1,000) in one process each read a record per second from an array of
# about M MiB of JSON (default 10). Prints the peak RSS of barrage with no
# array, with the array shared, and with a plain array parsed in each of K
# VUs (default 10: a copy per VU is what SharedArray avoids, and 1,000
# copies would not fit in memory). Fails if the shared array costs a VU
# more than a tenth of its size (a copy per VU): the cost per VU is the
# slope between K and N VUs, so that what a process pays once (the file in
# the archive and bundle, the JSON text store, the building VU's garbage)
# is not counted against each VU.
# Usage: tests/bench/shared_array.sh [--vus N] [--mib M] [--copy-vus K] [--duration D] [--bin-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
VUS=1000
MIB=10
COPY_VUS=10
DURATION=15s
BIN=${BUILD_DIR:-build}/bin
while [ $# -gt 0 ]; do
  case $1 in
    --vus) VUS=$2; shift 2 ;;
    --mib) MIB=$2; shift 2 ;;
    --copy-vus) COPY_VUS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --bin-dir) BIN=$2; shift 2 ;;
    *) echo "usage: $0 [--vus N] [--mib M] [--copy-vus K] [--duration D] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/barrage" ] || { echo "shared_array: $BIN/barrage is missing; build first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Records of about 500 bytes of JSON each.
records=$((MIB * 1024 * 1024 / 500))
awk -v n="$records" 'BEGIN {
  pad = sprintf("%400s", ""); gsub(/ /, "x", pad);
  printf "[";
  for (i = 0; i < n; i++) printf "%s{\"id\":%d,\"name\":\"user-%d\",\"email\":\"user-%d@example.com\",\"pad\":\"%s\"}", (i ? "," : ""), i, i, i, pad;
  printf "]\n";
}' >"$work/data.json"
bytes=$(stat -c %s "$work/data.json")

# Peak RSS (KiB) of one run: mode, VUs.
peak_rss() {
  "$BIN/barrage" run -q --no-summary -u "$2" -d "$DURATION" -e MODE="$1" -e DATA="$work/data.json" \
    tests/bench/shared_array.js >"$work/out.log" 2>"$work/err.log" &
  local pid=$! peak=0 rss
  while kill -0 $pid 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.2
  done
  wait $pid || { echo "shared_array: barrage ($1, $2 VUs) failed:" >&2; tail -20 "$work/err.log" >&2; exit 1; }
  echo "$peak"
}

base=$(peak_rss none "$VUS")
shared=$(peak_rss shared "$VUS")
small_base=$(peak_rss none "$COPY_VUS")
small_shared=$(peak_rss shared "$COPY_VUS")
copy=$(peak_rss copy "$COPY_VUS")
data_kib=$((bytes / 1024))
extra=$((shared - base))
small_extra=$((small_shared - small_base))
per_vu=$(((extra - small_extra) / (VUS - COPY_VUS)))
copy_per_vu=$(((copy - small_base) / COPY_VUS))
echo "shared_array vus=$VUS data_kib=$data_kib records=$records"
echo "  no array:      $VUS VUs peak_rss_kib=$base; $COPY_VUS VUs $small_base"
echo "  SharedArray:   $VUS VUs peak_rss_kib=$shared (+$extra); $COPY_VUS VUs $small_shared (+$small_extra)"
echo "                 per VU: ${per_vu} KiB (the slope between $COPY_VUS and $VUS VUs)"
echo "  plain array:   $COPY_VUS VUs peak_rss_kib=$copy: ${copy_per_vu} KiB per VU"
if [ $((per_vu * 10)) -gt "$data_kib" ]; then
  echo "shared_array: the SharedArray costs each VU more than a tenth of the data: a copy per VU?" >&2
  exit 1
fi
