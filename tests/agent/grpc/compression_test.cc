// WireMessageSize against gRPC's own compressor: the size data_sent counts
// must be the size gRPC puts on the wire, byte for byte.
#include "agent/grpc/compression.h"

#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/slice_buffer.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

// gRPC core's message compressor (src/core/lib/compression/message_compress.h),
// exported by libgrpc; it returns 0 when it sent the input as it is.
int grpc_msg_compress(grpc_compression_algorithm algorithm, grpc_slice_buffer* input, grpc_slice_buffer* output);

namespace barrage::agent::grpc_client {
namespace {

// What gRPC sends for `message` with `algorithm`: the compressed bytes, or
// the message itself when compression does not make it smaller.
int64_t GrpcWireSize(const std::string& message, grpc_compression_algorithm algorithm) {
  grpc_slice_buffer in, out;
  grpc_slice_buffer_init(&in);
  grpc_slice_buffer_init(&out);
  grpc_slice_buffer_add(&in, grpc_slice_from_copied_buffer(message.data(), message.size()));
  grpc_msg_compress(algorithm, &in, &out);
  const auto size = static_cast<int64_t>(out.length);
  grpc_slice_buffer_destroy(&in);
  grpc_slice_buffer_destroy(&out);
  return size + 5;
}

TEST(CompressionTest, NamesAndUnknownNames) {
  EXPECT_EQ(*ParseCompression("gzip"), Compression::kGzip);
  EXPECT_EQ(*ParseCompression("deflate"), Compression::kDeflate);
  EXPECT_EQ(*ParseCompression("identity"), Compression::kNone);
  EXPECT_EQ(*ParseCompression(""), Compression::kNone);
  absl::StatusOr<Compression> zstd = ParseCompression("zstd");
  ASSERT_FALSE(zstd.ok());
  EXPECT_EQ(zstd.status().message(),
            "unsupported compression \"zstd\": it needs to be one of \"gzip\", \"deflate\", \"identity\"");
  EXPECT_FALSE(ParseCompression("GZIP").ok());
}

TEST(CompressionTest, WireSizeIsGrpcsOwn) {
  grpc_init();
  std::mt19937 rng(7);
  std::vector<std::string> messages = {"", "a", "hello", std::string(100, 'x'), std::string(20000, 'x'),
                                       std::string(5000, '\0')};
  // Random bytes do not compress: gRPC sends them as they are.
  std::string noise(3000, ' ');
  for (char& c : noise) c = static_cast<char>(rng());
  messages.push_back(noise);
  std::string text;
  for (int i = 0; i < 500; ++i) text += "field " + std::to_string(rng() % 1000) + ";";
  messages.push_back(text);
  for (const std::string& m : messages) {
    SCOPED_TRACE(m.size());
    EXPECT_EQ(WireMessageSize(m, Compression::kNone), static_cast<int64_t>(m.size()) + 5);
    EXPECT_EQ(WireMessageSize(m, Compression::kGzip), GrpcWireSize(m, GRPC_COMPRESS_GZIP));
    EXPECT_EQ(WireMessageSize(m, Compression::kDeflate), GrpcWireSize(m, GRPC_COMPRESS_DEFLATE));
    // Again: the remembered last message gives the same answer.
    EXPECT_EQ(WireMessageSize(m, Compression::kDeflate), GrpcWireSize(m, GRPC_COMPRESS_DEFLATE));
  }
  EXPECT_LT(WireMessageSize(std::string(20000, 'x'), Compression::kGzip), 100);
  grpc_shutdown();
}

}  // namespace
}  // namespace barrage::agent::grpc_client
