#include "agent/grpc/compression.h"

#include <zlib.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace barrage::agent::grpc_client {

absl::StatusOr<Compression> ParseCompression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "deflate") return Compression::kDeflate;
  if (name.empty() || name == "identity") return Compression::kNone;
  return absl::InvalidArgumentError(absl::StrCat("unsupported compression \"", std::string(name),
                                                 "\": it needs to be one of \"gzip\", \"deflate\", \"identity\""));
}

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kDeflate:
      return "deflate";
    case Compression::kNone:
      break;
  }
  return "identity";
}

grpc_compression_algorithm ToGrpcAlgorithm(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return GRPC_COMPRESS_GZIP;
    case Compression::kDeflate:
      return GRPC_COMPRESS_DEFLATE;
    case Compression::kNone:
      break;
  }
  return GRPC_COMPRESS_NONE;
}

namespace {

// zlib's deflated size of `in` with gRPC's parameters; 0 when zlib fails
// (gRPC then sends the message as it is).
size_t DeflatedSize(std::string_view in, bool gzip) {
  z_stream zs{};
  // gRPC's zlib_compress: default level, window 15 (+16: the gzip wrapper),
  // memLevel 8, default strategy.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 | (gzip ? 16 : 0), 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return 0;
  }
  std::vector<unsigned char> out(deflateBound(&zs, static_cast<uLong>(in.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int r = deflate(&zs, Z_FINISH);
  const size_t size = r == Z_STREAM_END ? zs.total_out : 0;
  deflateEnd(&zs);
  return size;
}

}  // namespace

int64_t WireMessageSize(std::string_view message, Compression c) {
  constexpr int64_t kFrameHeader = 5;
  if (c == Compression::kNone || message.empty()) return static_cast<int64_t>(message.size()) + kFrameHeader;
  thread_local std::string last_message;
  thread_local Compression last_compression = Compression::kNone;
  thread_local size_t last_size = 0;
  if (c != last_compression || message != last_message) {
    const size_t deflated = DeflatedSize(message, c == Compression::kGzip);
    // Sent compressed only when that is smaller (gRPC's rule).
    last_size = deflated > 0 && deflated < message.size() ? deflated : message.size();
    last_message.assign(message.data(), message.size());
    last_compression = c;
  }
  return static_cast<int64_t>(last_size) + kFrameHeader;
}

}  // namespace barrage::agent::grpc_client
