// The direct codec (agent/js/proto_codec.h) against the JSON path it
// replaced (JSON.stringify then json_codec's JsonToBinary for a request;
// BinaryToJson then JSON.parse for a response), in one Duktape heap, on two
// messages: hello.HelloRequest/HelloResponse (unary_nolog.js's call) and
// bench.Order (about 30 fields of mixed kinds and 100 repeated items, see
// codec_bench.proto). Prints ns per encode and decode for each path; checks
// first that both paths give the same bytes and the same JS value.
//
//   build/bin/codec_bench [--iterations N] [--path both|json|direct] [--message all|hello|order]
//
// Timings on a shared machine are noisy; instruction counts are not:
//   valgrind --tool=callgrind build/bin/codec_bench --iterations N --path direct
// for two values of N gives the instructions per operation (see README.md).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "agent/grpc/json_codec.h"
#include "agent/grpc/proto_registry.h"
#include "agent/js/duktape/heap.h"
#include "agent/js/proto_codec.h"
#include "agent/js/values.h"

namespace {

using barrage::agent::grpc_client::ProtoRegistry;
namespace js = barrage::agent::js;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(path);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// The order as a script would build it.
constexpr char kOrderJs[] = R"JS((function () {
  var items = [];
  for (var i = 0; i < 100; i++) {
    items.push({ sku: 100000 + i, name: 'item number ' + i, price: 9.99 + i, quantity: 1 + (i % 5) });
  }
  return {
    id: 'order-000123', customerId: '4200000000', customerName: 'Jane Doe', email: 'jane@example.com',
    status: 'SHIPPED', total: 1234.5, discount: 0.15, itemCount: 100, priority: 3, gift: true, express: false,
    token: 'AAECAwQFBgcICQ==', shipping: { street: '1 Main St', city: 'Springfield', zip: '12345', country: 'US' },
    billing: { street: '2 Side Rd', city: 'Shelbyville', zip: '54321', country: 'US' },
    createdAt: '2024-05-01T10:00:00.500Z', labels: { source: 'web', campaign: 'spring' }, tags: ['a', 'b', 'c'],
    balance: '-1500', checksum: '123456789012', sequence: '987654321', currency: 'EUR', note: 'leave at the door',
    tax: 123.45, shippingCost: 4.99, warehouse: 7, channel: 'online', coupon: 'SPRING24', loyaltyPoints: 1200,
    paid: true, locale: 'en-US', items: items
  };
})())JS";

double NsPer(int iterations, const std::function<void()>& fn) {
  for (int i = 0; i < iterations / 10 + 1; ++i) fn();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) fn();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return std::chrono::duration<double, std::nano>(elapsed).count() / iterations;
}

std::string Stringify(duk_context* ctx) {
  duk_dup_top(ctx);
  duk_json_encode(ctx, -1);
  std::string out = duk_get_string(ctx, -1);
  duk_pop(ctx);
  return out;
}

struct Case {
  const char* name;
  const char* method;
  std::string request_js;
  std::string response_bytes;
};

}  // namespace

int main(int argc, char** argv) {
  int iterations = 20000;
  std::string path = "both", message = "all";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iterations = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
      path = argv[++i];
    } else if (std::strcmp(argv[i], "--message") == 0 && i + 1 < argc) {
      message = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--iterations N] [--path both|json|direct] [--message all|hello|order]\n",
                   argv[0]);
      return 2;
    }
  }
  const bool run_json = path != "direct", run_direct = path != "json";
  ProtoRegistry registry;
  auto loaded = registry.Load({BARRAGE_BENCH_DIR, BARRAGE_BENCH_DIR "/definitions"},
                              {"codec_bench.proto", "hello.proto"}, ReadFile);
  if (!loaded.ok()) {
    std::fprintf(stderr, "codec_bench: %s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  duk_context* ctx = js::CreateHeap(nullptr);
  Case cases[] = {
      {"hello (1 field)", "/hello.HelloService/SayHello", "({greeting: 'Bert'})",
       std::string("\x0a\x0aHello Bert", 12)},
      {"order (31 fields, 100 items)", "/bench.BenchService/Place", kOrderJs, ""},
  };
  std::printf("%-30s %12s %12s %12s %12s %12s %12s\n", "message", "enc JSON ns", "enc direct", "speed-up",
              "dec JSON ns", "dec direct", "speed-up");
  for (Case& c : cases) {
    if (message != "all" && std::string(c.name).rfind(message, 0) != 0) continue;
    const auto* method = registry.FindMethod(c.method);
    if (duk_peval_string(ctx, c.request_js.c_str()) != 0) {
      std::fprintf(stderr, "codec_bench: %s\n", duk_safe_to_string(ctx, -1));
      return 1;
    }
    // Encoding, both ways, checked equal.
    auto old_encode = [&]() -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> json = js::SafeJsonEncode(ctx, -1);
      if (!json.ok()) return json.status();
      return barrage::agent::grpc_client::JsonToBinary(registry, method->descriptor->input_type(), *json);
    };
    auto new_encode = [&] {
      return js::EncodeMessage(ctx, -1, registry, *method->input_plan, js::NonFinite::kAsStrings);
    };
    absl::StatusOr<std::string> a = old_encode(), b = new_encode();
    if (!a.ok() || !b.ok() || *a != *b) {
      std::fprintf(stderr, "codec_bench: %s: the two encoders disagree\n", c.name);
      return 1;
    }
    if (c.response_bytes.empty()) c.response_bytes = *a;
    const double enc_old = run_json ? NsPer(iterations, [&] { (void)old_encode(); }) : 0;
    const double enc_new = run_direct ? NsPer(iterations, [&] { (void)new_encode(); }) : 0;
    duk_pop(ctx);
    // Decoding, both ways, checked equal.
    const auto* output = method->descriptor->output_type();
    auto old_decode = [&] {
      auto json = barrage::agent::grpc_client::BinaryToJson(registry, output, c.response_bytes);
      (void)js::PushJson(ctx, *json);
    };
    auto new_decode = [&] { (void)js::PushDecodedMessage(ctx, registry, *method->output_plan, c.response_bytes); };
    old_decode();
    const std::string old_value = Stringify(ctx);
    duk_pop(ctx);
    new_decode();
    const std::string new_value = Stringify(ctx);
    duk_pop(ctx);
    if (old_value != new_value) {
      std::fprintf(stderr, "codec_bench: %s: the two decoders disagree\n", c.name);
      return 1;
    }
    const double dec_old = !run_json ? 0 : NsPer(iterations, [&] {
      old_decode();
      duk_pop(ctx);
    });
    const double dec_new = !run_direct ? 0 : NsPer(iterations, [&] {
      new_decode();
      duk_pop(ctx);
    });
    std::printf("%-30s %12.0f %12.0f %11.2fx %12.0f %12.0f %11.2fx\n", c.name, enc_old, enc_new, enc_old / enc_new,
                dec_old, dec_new, dec_old / dec_new);
  }
  duk_destroy_heap(ctx);
  return 0;
}
