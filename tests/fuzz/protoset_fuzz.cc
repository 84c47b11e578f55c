// client.loadProtoset() and client.load() read files users give: a
// FileDescriptorSet and .proto source. Both must fail cleanly on garbage.
#include "agent/grpc/proto_registry.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [protoset, source] = barrage::fuzz::SplitAtNul(barrage::fuzz::AsView(data, size));
  barrage::agent::grpc_client::ProtoRegistry registry;
  (void)registry.LoadProtoset(std::string(protoset), "fuzz.protoset");
  const std::string text(source);
  barrage::agent::grpc_client::ProtoRegistry compiled;
  (void)compiled.Load({"/fuzz"}, {"main.proto"}, [&text](const std::string& path) -> absl::StatusOr<std::string> {
    if (path == "/fuzz/main.proto") return text;
    return absl::NotFoundError(path);
  });
  return 0;
}
