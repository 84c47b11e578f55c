#!/usr/bin/env bash
# h2load (Debian's nghttp2-client) as a gRPC client for hello.HelloService/SayHello.
# h2load knows nothing of gRPC, so it posts a pre-framed body: the 5-byte gRPC
# prefix (flag 0, big-endian length) and HelloRequest{greeting:"Bert"}'s bytes.
# It counts HTTP 200s, so a gRPC error status (sent in trailers) still counts as
# success: use it against a target without --error-rate.
#
#   h2load_sayhello.sh --address 127.0.0.1:PORT (--requests N | --duration 10s)
#                      [--concurrency 32] [--body-only FILE] [--print]
# --body-only FILE writes the body and exits; --print shows the command instead of running it.
set -euo pipefail

address=127.0.0.1:9001 requests="" duration="" concurrency=32 body_only="" print=0
while (($#)); do
  case "$1" in
    --address) address=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --body-only) body_only=$2; shift 2 ;;
    --print) print=1; shift ;;
    *) echo "h2load_sayhello.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$address" in
  127.*|localhost:*) ;;
  *) echo "h2load_sayhello.sh: --address must be loopback, got $address" >&2; exit 2 ;;
esac

# Writes the framed request for greeting $2 to file $1. The greeting is short
# (< 128 bytes), so both the protobuf length and the message fit one byte.
write_body() {
  local file=$1 greeting=$2
  local n=${#greeting}
  local message_len=$((n + 2))  # tag 0x0a, length byte, the string
  printf "\\x00\\x00\\x00\\x00\\x$(printf %02x "$message_len")\\x0a\\x$(printf %02x "$n")%s" \
    "$greeting" >"$file"
}

if [[ -n "$body_only" ]]; then
  write_body "$body_only" Bert
  exit 0
fi

body=$(mktemp /tmp/barrage_h2load_body.XXXXXX)
trap 'rm -f "$body"' EXIT
write_body "$body" Bert

# One connection, --concurrency streams in flight: the same shape as the bare
# client's one channel with 32 calls.
cmd=(h2load -c 1 -m "$concurrency" -d "$body"
     -H 'content-type: application/grpc' -H 'te: trailers')
if [[ -n "$requests" ]]; then
  cmd+=(-n "$requests")
else
  # -D needs a duration in seconds (h2load accepts "10s", "1m").
  cmd+=(-D "${duration:-10s}")
fi
cmd+=("http://$address/hello.HelloService/SayHello")

if ((print)); then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
