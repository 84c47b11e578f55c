// Message compression of gRPC calls (issue 16): the `compression` param of
// connect, invoke, asyncInvoke and Stream. gRPC C++ compresses and
// decompresses the messages itself; this names the algorithms a script may
// ask for and works out what a compressed message costs on the wire, which
// gRPC's API does not tell (data_sent counts bytes on the wire).
#ifndef BARRAGE_AGENT_GRPC_COMPRESSION_H_
#define BARRAGE_AGENT_GRPC_COMPRESSION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include <grpc/impl/codegen/compression_types.h>

#include "absl/status/statusor.h"

namespace barrage::agent::grpc_client {

// The message compressions gRPC C++ 1.51 has built in (grpc-go, and so k6's
// proposal, also know zstd and snappy: gRPC C++ has neither).
enum class Compression { kNone, kDeflate, kGzip };

// "gzip", "deflate", or "identity" / "" (none). Anything else is
// kInvalidArgument naming the value and the ones there are:
// `unsupported compression "zstd": it needs to be one of "gzip", "deflate", "identity"`.
absl::StatusOr<Compression> ParseCompression(std::string_view name);
const char* CompressionName(Compression c);
grpc_compression_algorithm ToGrpcAlgorithm(Compression c);

// The bytes a message of these serialized bytes puts on the wire: the
// 5-byte gRPC frame header plus the message as gRPC sends it. gRPC
// compresses with zlib at its default level and window and sends the result
// only when it is smaller than the message (message_compress.cc in gRPC's
// core); this compresses the same way with the same zlib to count it. The
// work is done again here, because gRPC does not report the size: it costs
// as much CPU as gRPC's own compression, except that the last message a
// thread measured is remembered, and load tests tend to send one request
// over and over.
int64_t WireMessageSize(std::string_view message, Compression c);

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_COMPRESSION_H_
