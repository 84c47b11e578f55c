// Differential fuzzing of the direct codec (agent/js/proto_codec.h) against
// the JSON path it replaced, on the types of tests/agent/js/testdata and
// tests/agent/grpc/testdata. The first input byte picks the type and the
// direction; the rest is either wire bytes (both decoders must give the
// same JS value, or fail with the same error) or JSON text parsed into the
// heap (both encoders must give the same message, or the same error).
// A difference aborts, which libFuzzer reports with the input.
//
// Replayed on its corpus by ctest in every build; fuzzed with clang by
// tests/fuzz/run.sh (see tests/fuzz/CMakeLists.txt).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "agent/grpc/json_codec.h"
#include "agent/grpc/proto_registry.h"
#include "agent/js/cesu8.h"
#include "agent/js/duktape/heap.h"
#include "agent/js/proto_codec.h"
#include "agent/js/values.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/message_differencer.h"

namespace {

namespace gc = ::barrage::agent::grpc_client;
namespace js = ::barrage::agent::js;
namespace pb = ::google::protobuf;

constexpr const char* kTypes[] = {"codec.Everything", "codec2.Old",       "test.Scalars",
                                  "test.Composite",   "test.WellKnown",   "legacy.Old",
                                  "google.protobuf.Value", "google.protobuf.Any"};
constexpr size_t kTypeCount = sizeof(kTypes) / sizeof(kTypes[0]);

absl::StatusOr<std::string> ReadDisk(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct World {
  World() {
    pb::SetLogHandler(nullptr);
    auto loaded = registry.Load({BARRAGE_GRPC_TESTDATA, BARRAGE_JS_TESTDATA},
                                {"types.proto", "legacy.proto", "codec.proto", "legacy2.proto"}, ReadDisk);
    if (!loaded.ok()) {
      std::fprintf(stderr, "codec_fuzz: %s\n", std::string(loaded.status().message()).c_str());
      std::abort();
    }
    ctx = js::CreateHeap(nullptr);
  }
  gc::ProtoRegistry registry;
  duk_context* ctx;
};

std::string Text(const absl::Status& st) { return std::string(st.message()); }

[[noreturn]] void Differ(const char* what, const std::string& type, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "codec_fuzz: %s of %s differ\nJSON path:   %s\ndirect codec: %s\n", what, type.c_str(),
               absl::CEscape(a).c_str(), absl::CEscape(b).c_str());
  std::abort();
}

std::string Stringify(duk_context* ctx) {
  duk_dup_top(ctx);
  duk_json_encode(ctx, -1);
  std::string out = duk_is_string(ctx, -1) ? js::Utf8FromJs(duk_get_string(ctx, -1)) : "undefined";
  duk_pop(ctx);
  return out;
}

void Decode(World& w, const std::string& type, const std::string& bytes) {
  const pb::Descriptor* d = w.registry.FindMessageType(type);
  std::string old_value, new_value;
  absl::StatusOr<std::string> json = gc::BinaryToJson(w.registry, d, bytes);
  if (json.ok()) {
    if (!js::PushJson(w.ctx, *json).ok()) Differ("JSON.parse", type, *json, "");
    old_value = Stringify(w.ctx);
    duk_pop(w.ctx);
  } else {
    old_value = "ERROR " + Text(json.status());
  }
  absl::Status st = js::PushDecodedMessage(w.ctx, w.registry, w.registry.Plan(d), bytes);
  if (st.ok()) {
    new_value = Stringify(w.ctx);
    duk_pop(w.ctx);
  } else {
    new_value = "ERROR " + Text(st);
  }
  if (old_value != new_value) Differ("decodings", type, old_value, new_value);
}

void Encode(World& w, const std::string& type, const std::string& raw) {
  // JS strings in a VU are valid CESU-8 (sources, natives' strings and
  // responses go through cesu8.h); raw invalid bytes would only test how
  // leniently Duktape's JSON encoder decodes them, which no script meets.
  const std::string text = js::Utf8ToJs(js::Utf8FromJs(raw));
  if (!js::PushJson(w.ctx, text).ok()) {
    duk_pop(w.ctx);  // not JSON: nothing to compare
    return;
  }
  const pb::Descriptor* d = w.registry.FindMessageType(type);
  absl::StatusOr<std::string> json = js::SafeJsonEncode(w.ctx, -1);
  absl::StatusOr<std::string> a = json.ok() ? gc::JsonToBinary(w.registry, d, *json) : json.status();
  absl::StatusOr<std::string> b = js::EncodeMessage(w.ctx, -1, w.registry, w.registry.Plan(d), js::NonFinite::kAsNull);
  duk_pop(w.ctx);
  if (a.ok() != b.ok()) Differ("encodings", type, a.ok() ? "ok" : Text(a.status()), b.ok() ? "ok" : Text(b.status()));
  if (!a.ok()) {
    // Both refuse. Past json_codec's depth limit (1000) or the native
    // stack, the texts say so differently.
    if (absl::StrContains(Text(a.status()), "nested too deeply") &&
        absl::StrContains(Text(b.status()), "nested too deeply")) {
      return;
    }
    if (Text(a.status()) != Text(b.status())) Differ("encoding errors", type, Text(a.status()), Text(b.status()));
    return;
  }
  if (*a == *b) return;
  std::unique_ptr<pb::Message> ma(w.registry.Prototype(d)->New()), mb(w.registry.Prototype(d)->New());
  if (!ma->ParsePartialFromString(*a) || !mb->ParsePartialFromString(*b)) Differ("encodings (unparsable)", type, *a, *b);
  pb::util::MessageDifferencer differ;
  pb::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  differ.set_field_comparator(&comparator);
  if (!differ.Compare(*ma, *mb)) Differ("encodings", type, ma->ShortDebugString(), mb->ShortDebugString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();
  if (size < 1) return 0;
  const std::string type = kTypes[data[0] % kTypeCount];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] / kTypeCount) % 2 == 0) {
    Decode(*world, type, rest);
  } else {
    Encode(*world, type, rest);
  }
  return 0;
}
