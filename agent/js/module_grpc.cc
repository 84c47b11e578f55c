#include "agent/js/module_grpc.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/grpc/json_codec.h"
#include "agent/grpc/stream_call.h"
#include "agent/js/cesu8.h"
#include "agent/js/duktape/object_access.h"
#include "agent/js/proto_codec.h"
#include "agent/js/runtime.h"
#include "grpc/health/v1/health.pb.h"
#include "agent/js/values.h"
#include "common/version.h"
#include "common/duration.h"
#include "common/paths.h"
#include "common/status_macros.h"

namespace barrage::agent::js {
namespace {

namespace gc = ::barrage::agent::grpc_client;

}  // namespace

// One open Stream (spec §1.13). Lives in its client's map until the call
// finishes; the handlers below hold it too.
struct GrpcClientState::Stream {
  gc::StreamCall* call = nullptr;  // owns itself; nullptr once finished
  std::shared_ptr<const gc::ProtoRegistry> registry;  // keeps method alive
  const gc::MethodInfo* method = nullptr;
  bool discard = false;
  int64_t loop_op = 0;
  // The VU's tags, group and the call's tags as they were at creation, with
  // the system tags; `status` is added for grpc_req_duration.
  metrics::TagSet tags;
  std::string counter_tags;  // encoded, for the message counters
  metrics::SeriesRef msgs_received, msgs_sent;  // with counter_tags
  // What grpc_req_failed counts as success for this stream (nullptr: no sample).
  std::shared_ptr<const ExpectedStatuses> expected;
  // The script ended it (cancel, client.close(), the iteration's end): its
  // Canceled status is the close the script asked for, not a failure.
  bool cancelled_by_script = false;
  // stream.end() was called (its JS `_ended`): later writes are ignored.
  bool ended = false;
  // The Stream object and its `_handlers` (Duktape heap pointers), for the
  // `data` dispatch. Valid while the stream's tasks can run: async.js's
  // table of open streams holds the object until its `end` has been
  // dispatched, or until the loop's reset, after which no task of it runs
  // (EventLoop drops them). `_handlers` is a non-writable property.
  void* js_self = nullptr;
  void* js_handlers = nullptr;
};

namespace {

constexpr char kGrpcJs[] =
#include "agent/js/module_grpc_js.inc"
    ;

// Registries shared between VUs, by bundle and cumulative load calls: every
// VU runs the same init code, so only the first one parses the protos.
std::mutex& CacheMutex() {
  static std::mutex mu;
  return mu;
}
struct CachedLoad {
  std::shared_ptr<const gc::ProtoRegistry> registry;
  std::vector<gc::MethodInfo> methods;  // what that load call returned
};
std::unordered_map<std::string, CachedLoad>& Cache() {
  static auto* cache = new std::unordered_map<std::string, CachedLoad>();
  return *cache;
}

absl::Status ReadMetadata(duk_context* ctx, duk_idx_t idx, const std::string& wrap, const char* param,
                          gc::Metadata& out);

absl::StatusOr<GrpcClientState*> ClientAt(Runtime& rt, duk_context* ctx) {
  auto& clients = rt.grpc_clients();
  duk_int_t id = duk_get_int_default(ctx, 0, -1);
  if (id < 0 || static_cast<size_t>(id) >= clients.size()) {
    return absl::InvalidArgumentError("invalid GRPC client");
  }
  return clients[id].get();
}

std::vector<std::string> ReadStringArray(duk_context* ctx, duk_idx_t idx) {
  std::vector<std::string> out;
  if (!duk_is_array(ctx, idx)) return out;
  duk_size_t n = duk_get_length(ctx, idx);
  for (duk_size_t i = 0; i < n; ++i) {
    duk_get_prop_index(ctx, idx, static_cast<duk_uarridx_t>(i));
    duk_size_t len = 0;
    const char* s = duk_safe_to_lstring(ctx, -1, &len);
    out.push_back(Utf8FromJs(std::string_view(s, len)));  // whole: a NUL inside is refused, not cut off
    duk_pop(ctx);
  }
  return out;
}

void PushMethods(duk_context* ctx, const std::vector<gc::MethodInfo>& methods) {
  duk_push_array(ctx);
  for (size_t i = 0; i < methods.size(); ++i) {
    duk_push_object(ctx);
    duk_push_string(ctx, methods[i].package.c_str());
    duk_put_prop_string(ctx, -2, "package");
    duk_push_string(ctx, methods[i].service.c_str());
    duk_put_prop_string(ctx, -2, "service");
    duk_push_string(ctx, methods[i].full_method.c_str());
    duk_put_prop_string(ctx, -2, "full_method");
    duk_put_prop_index(ctx, -2, static_cast<duk_uarridx_t>(i));
  }
}

absl::StatusOr<int> NewClientImpl(duk_context* ctx, Runtime& rt) {
  rt.grpc_clients().push_back(std::make_unique<GrpcClientState>());
  duk_push_int(ctx, static_cast<duk_int_t>(rt.grpc_clients().size() - 1));
  return 1;
}

// Shared by load and loadProtoset: replays the client's load calls on a
// fresh registry unless another VU already did.
absl::StatusOr<int> LoadCommon(duk_context* ctx, Runtime& rt, GrpcClientState& client, const std::string& call,
                               const std::function<absl::StatusOr<std::vector<gc::MethodInfo>>(gc::ProtoRegistry&)>& load) {
  const std::string key = absl::StrCat(client.load_key, "\n", call);
  const std::string cache_key =
      absl::StrCat(reinterpret_cast<uintptr_t>(rt.config().bundle.get()), "|", duk_get_int(ctx, 0), "|", key);
  std::optional<CachedLoad> cached;
  if (rt.config().bundle != nullptr) {
    std::lock_guard<std::mutex> lock(CacheMutex());
    auto it = Cache().find(cache_key);
    if (it != Cache().end()) cached = it->second;
  }
  std::vector<gc::MethodInfo> methods;
  if (cached) {
    methods = cached->methods;
    client.registry = cached->registry;
  } else {
    auto registry = client.registry ? std::make_shared<gc::ProtoRegistry>(*client.registry)
                                    : std::make_shared<gc::ProtoRegistry>();
    absl::StatusOr<std::vector<gc::MethodInfo>> loaded = load(*registry);
    if (!loaded.ok()) return loaded.status();
    methods = *std::move(loaded);
    client.registry = registry;
    if (rt.config().bundle != nullptr) {
      std::lock_guard<std::mutex> lock(CacheMutex());
      Cache()[cache_key] = CachedLoad{registry, methods};
    }
  }
  client.load_key = key;
  PushMethods(ctx, methods);
  return 1;
}

// Paths as k6 resolves them (spec §1.3, §1.4): relative to the main
// script's directory (not the importing module's), "file://" stripped,
// cleaned; proto names joined onto each import path (ProtoRegistry::Load).
absl::StatusOr<int> LoadImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  const std::string dir = rt.MainDir();
  std::vector<std::string> import_paths;
  for (const std::string& p : ReadStringArray(ctx, 1)) {
    BARRAGE_ASSIGN_OR_RETURN(std::string abs, ResolveFilePath(dir, p));
    import_paths.push_back(std::move(abs));
  }
  if (import_paths.empty()) import_paths.push_back(dir);
  std::vector<std::string> files = ReadStringArray(ctx, 2);
  for (const std::string& f : files) {
    if (f.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("proto file name \"", absl::CHexEscape(f), "\" holds a NUL character"));
    }
  }
  const std::string call = absl::StrCat("load:", absl::StrJoin(import_paths, ","), ":", absl::StrJoin(files, ","));
  return LoadCommon(ctx, rt, *client, call, [&](gc::ProtoRegistry& registry) {
    return registry.Load(import_paths, files, [&rt](const std::string& path) { return rt.ReadFile(path); });
  });
}

absl::StatusOr<int> LoadProtosetImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  duk_size_t len = 0;
  const char* given = duk_safe_to_lstring(ctx, 1, &len);
  BARRAGE_ASSIGN_OR_RETURN(const std::string path, ResolveFilePath(rt.MainDir(), Utf8FromJs(std::string_view(given, len))));
  return LoadCommon(ctx, rt, *client, "protoset:" + path, [&](gc::ProtoRegistry& registry)
                        -> absl::StatusOr<std::vector<gc::MethodInfo>> {
    absl::StatusOr<std::string> bytes = rt.ReadFile(path);
    if (absl::IsFailedPrecondition(bytes.status())) {
      return absl::InvalidArgumentError(absl::StrCat("couldn't read protoset: ", bytes.status().message()));
    }
    if (!bytes.ok()) return absl::NotFoundError(absl::StrCat("couldn't open protoset: ", bytes.status().message()));
    return registry.LoadProtoset(*bytes, path);
  });
}

absl::StatusOr<int> ConnectedImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  duk_push_boolean(ctx, client->connection != nullptr);
  return 1;
}

absl::StatusOr<int> HasMethodImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  duk_push_boolean(ctx, client->registry != nullptr &&
                            client->registry->FindMethod(duk_safe_to_string(ctx, 1)) != nullptr);
  return 1;
}

absl::StatusOr<int> ParseDurationImpl(duk_context* ctx, Runtime&) {
  absl::StatusOr<absl::Duration> d = ParseDuration(duk_safe_to_string(ctx, 0));
  if (d.ok()) duk_push_number(ctx, absl::ToDoubleMilliseconds(*d));
  else duk_push_null(ctx);
  return 1;
}

// The `status` system tag, when systemTags has it.
void AddStatusTag(bool enabled, metrics::TagSet& tags, int code) {
  if (enabled) tags["status"] = absl::StrCat(code);
}

// No expected_response tag on gRPC samples (spec §2.1: they never carry
// it, as k6's do not): the response callback's judgement shows in
// grpc_req_failed only.

GrpcModuleState& ModuleState(Runtime& rt) {
  if (rt.grpc_module() == nullptr) rt.grpc_module() = std::make_shared<GrpcModuleState>();
  return *rt.grpc_module();
}

// The samples of one finished call (issue 16), all with the same tags
// (status included): grpc_req_duration, grpc_reqs (1), and grpc_req_failed
// (1 when the status is not among the expected ones, else 0) unless the
// response callback is null, as k6's http_req_failed. `forgiven`: a stream
// the script itself cancelled.
void EmitCallSamples(VuHost& host, GrpcModuleState::CallSeries& series, absl::Duration elapsed, int code,
                     const ExpectedStatuses* expected, bool forgiven = false) {
  host.EmitSeries(series.duration, absl::ToDoubleMilliseconds(elapsed));
  host.EmitSeries(series.reqs, 1);
  if (expected != nullptr) host.EmitSeries(series.failed, forgiven || expected->Match(code) ? 0 : 1);
}

// The same for a call whose tags are not kept (a stream's end, reflection).
void EmitCallSamples(VuHost& host, const std::string& encoded_tags, absl::Duration elapsed, int code,
                     const ExpectedStatuses* expected, bool forgiven = false) {
  GrpcModuleState::CallSeries series(encoded_tags);
  EmitCallSamples(host, series, elapsed, code, expected, forgiven);
}

// The hidden property of the objects grpc.expectedStatuses() returns: a flat
// array [min0, max0, min1, max1, ...]. Hidden, so only those objects have it.
constexpr char kExpectedKey[] = DUK_HIDDEN_SYMBOL("expectedStatuses");

// expectedStatuses(flat): the JS half has checked the arguments (k6's
// messages); this wraps them in an opaque object.
absl::StatusOr<int> ExpectedStatusesImpl(duk_context* ctx, Runtime&) {
  duk_push_object(ctx);
  duk_dup(ctx, 0);
  duk_put_prop_string(ctx, -2, kExpectedKey);
  duk_freeze(ctx, -1);
  return 1;
}

// A responseCallback value: null gives nullptr (no grpc_req_failed sample),
// an object of grpc.expectedStatuses() its statuses; anything else is
// refused with `error`.
absl::StatusOr<std::shared_ptr<const ExpectedStatuses>> ReadExpected(duk_context* ctx, duk_idx_t idx,
                                                                      const std::string& error) {
  idx = duk_normalize_index(ctx, idx);
  if (duk_is_null_or_undefined(ctx, idx)) return nullptr;
  if (!duk_is_object(ctx, idx)) return absl::InvalidArgumentError(error);
  if (!duk_get_prop_string(ctx, idx, kExpectedKey) || !duk_is_array(ctx, -1)) {
    duk_pop(ctx);
    return absl::InvalidArgumentError(error);
  }
  auto expected = std::make_shared<ExpectedStatuses>();
  const duk_size_t n = duk_get_length(ctx, -1);
  for (duk_size_t i = 0; i + 1 < n; i += 2) {
    duk_get_prop_index(ctx, -1, static_cast<duk_uarridx_t>(i));
    duk_get_prop_index(ctx, -2, static_cast<duk_uarridx_t>(i + 1));
    // Clamped: statuses are small integers, and a cast of a huge double is undefined.
    auto clamp = [](double v) { return static_cast<int>(std::max(-1e9, std::min(1e9, v))); };
    expected->ranges.emplace_back(clamp(duk_get_number(ctx, -2)), clamp(duk_get_number(ctx, -1)));
    duk_pop_2(ctx);
  }
  duk_pop(ctx);
  return std::shared_ptr<const ExpectedStatuses>(std::move(expected));
}

// setResponseCallback(value): for this VU's calls from now on.
absl::StatusOr<int> SetResponseCallbackImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(ModuleState(rt).response_callback,
                           ReadExpected(ctx, 0, "unsupported argument, expected grpc.expectedStatuses"));
  return 0;
}

// Reads the string or string-array at idx into out (connect's tls.cacerts).
absl::Status ReadPemList(duk_context* ctx, duk_idx_t idx, std::vector<std::string>& out) {
  if (duk_is_string(ctx, idx)) {
    out.emplace_back(duk_get_string(ctx, idx));
    return absl::OkStatus();
  }
  if (duk_is_array(ctx, idx)) {
    for (const std::string& pem : ReadStringArray(ctx, idx)) out.push_back(pem);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("invalid tls cacerts value, it needs to be a PEM formatted string or an array of them");
}

// The test-wide TLS options (spec §1.5.1): insecureSkipTLSVerify always;
// without a tls object of its own, the tlsAuth certificate for the host: the
// first whose domains cover it, else the first without domains, else the
// first (Go's client, and so k6, offers its first certificate whatever the
// domains say). tlsVersion and tlsCipherSuites cannot be set per channel in
// gRPC 1.51; the controller warns about them once.
void ApplyTestWideTls(const Options& options, bool own_tls, gc::ConnectParams& params) {
  if (params.plaintext) return;
  params.tls_skip_verify = options.insecure_skip_tls_verify.value_or(false);
  if (own_tls || !options.tls_auth || options.tls_auth->empty()) return;
  const std::string host = gc::TlsHostName(params.address, params.authority);
  const TlsAuth* chosen = nullptr;
  for (const TlsAuth& auth : *options.tls_auth) {
    for (const std::string& domain : auth.domains) {
      if (gc::TlsDomainMatches(domain, host)) chosen = &auth;
    }
    if (chosen != nullptr) break;
  }
  for (const TlsAuth& auth : *options.tls_auth) {
    if (chosen == nullptr && auth.domains.empty()) chosen = &auth;
  }
  if (chosen == nullptr) chosen = &options.tls_auth->front();
  params.tls_cert = chosen->cert;
  params.tls_key = chosen->key;
  params.tls_password = chosen->password.value_or("");
}

// k6's dns and hosts options (issue 16 item 2), as the connection takes them.
std::shared_ptr<const gc::DnsSettings> DnsSettingsOf(const Options& options) {
  auto dns = std::make_shared<gc::DnsSettings>();
  dns->ttl = options.dns.Ttl();
  dns->select = gc::ParseDnsSelect(options.dns.Select());
  dns->policy = gc::ParseDnsPolicy(options.dns.Policy());
  if (options.hosts) dns->hosts = *options.hosts;
  return dns;
}

// connect(id, address, params): params already checked by the JS half.
absl::StatusOr<int> ConnectImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  const std::string wrap = "invalid grpc.connect() parameters: ";
  gc::ConnectParams params;
  params.address = duk_safe_to_string(ctx, 1);
  duk_get_prop_string(ctx, 2, "plaintext");
  params.plaintext = duk_to_boolean(ctx, -1);
  duk_get_prop_string(ctx, 2, "timeout");
  params.timeout = DurationFromMillis(duk_get_number_default(ctx, -1, 60000));
  duk_get_prop_string(ctx, 2, "maxReceiveSize");
  params.max_receive_size = JsNumberToInt64(duk_get_number_default(ctx, -1, 0));
  duk_get_prop_string(ctx, 2, "maxSendSize");
  params.max_send_size = JsNumberToInt64(duk_get_number_default(ctx, -1, 0));
  duk_get_prop_string(ctx, 2, "authority");
  params.authority = duk_safe_to_string(ctx, -1);
  duk_get_prop_string(ctx, 2, "reflect");
  params.reflect = duk_to_boolean(ctx, -1);
  duk_get_prop_string(ctx, 2, "connectionSharing");
  params.connection_sharing = static_cast<int>(std::clamp(duk_get_number_default(ctx, -1, 0), -1.0, 1e9));
  duk_pop_n(ctx, 7);
  gc::Compression compression = gc::Compression::kNone;
  if (duk_get_prop_string(ctx, 2, "compression")) {
    absl::StatusOr<gc::Compression> parsed = gc::ParseCompression(duk_safe_to_string(ctx, -1));
    if (!parsed.ok()) return absl::InvalidArgumentError(wrap + std::string(parsed.status().message()));
    compression = *parsed;
  }
  duk_pop(ctx);
  if (duk_get_prop_string(ctx, 2, "reflectMetadata")) {
    BARRAGE_RETURN_IF_ERROR(ReadMetadata(ctx, -1, wrap, "reflectMetadata", params.reflect_metadata));
  }
  duk_pop(ctx);
  bool own_tls = false;  // a tls object with keys: a fresh TLS config without tlsAuth
  if (duk_get_prop_string(ctx, 2, "tls") && !params.plaintext) {
    if (duk_is_object(ctx, -1)) {
      duk_enum(ctx, -1, DUK_ENUM_OWN_PROPERTIES_ONLY);
      own_tls = duk_next(ctx, -1, /*get_value=*/0) != 0;
      if (own_tls) duk_pop(ctx);  // the key
      duk_pop(ctx);               // the enumerator
    }
    // Keys other than these four are ignored, as k6 does.
    auto pem = [&](const char* key, std::string& out) -> absl::Status {
      if (duk_get_prop_string(ctx, -1, key) && !duk_is_undefined(ctx, -1)) {
        if (!duk_is_string(ctx, -1)) {
          duk_pop(ctx);
          return absl::InvalidArgumentError(absl::StrCat(
              wrap, "invalid tls ", key, " value: ", std::string(key) == "password" ? "it needs to be a string"
                                                                                    : "it needs to be a PEM formatted string"));
        }
        out = duk_get_string(ctx, -1);
      }
      duk_pop(ctx);
      return absl::OkStatus();
    };
    BARRAGE_RETURN_IF_ERROR(pem("cert", params.tls_cert));
    BARRAGE_RETURN_IF_ERROR(pem("key", params.tls_key));
    BARRAGE_RETURN_IF_ERROR(pem("password", params.tls_password));
    if (duk_get_prop_string(ctx, -1, "cacerts") && !duk_is_undefined(ctx, -1)) {
      absl::Status st = ReadPemList(ctx, -1, params.tls_cacerts);
      if (!st.ok()) return absl::InvalidArgumentError(wrap + std::string(st.message()));
    }
    duk_pop(ctx);
  }
  duk_pop(ctx);
  ApplyTestWideTls(rt.options(), own_tls, params);
  // userAgent (spec §1.5): k6 gives it to grpc-go as the primary user
  // agent, so the server sees "<value> grpc-go/…"; here "<value> grpc-c++/…".
  params.user_agent = rt.options().UserAgent(kBarrageVersion);
  params.cq = rt.host().completion_queue();
  params.dns = DnsSettingsOf(rt.options());
  absl::StatusOr<gc::Connection::Connected> result = absl::UnknownError("connect did not finish");
  rt.host().Block([&](VuHost::Resume resume) {
    // The VU context ending cancels the dial (when Connect gives a
    // canceller, its done runs on this VU's thread: the hook can be cleared
    // there). A flag, because done may run before Connect returns.
    auto hooked = std::make_shared<bool>(false);
    auto finished = std::make_shared<bool>(false);
    std::function<void()> cancel = gc::Connection::Connect(
        params, [&rt, &result, resume, hooked, finished](absl::StatusOr<gc::Connection::Connected> r) {
          *finished = true;
          if (*hooked) rt.host().OnInterrupt(nullptr);
          result = std::move(r);
          resume();
        });
    if (cancel && !*finished) {
      *hooked = true;
      rt.host().OnInterrupt(std::move(cancel));
    }
  });
  if (!result.ok()) return result.status();
  // Reflection calls: one sample each, with the VU's tags and the status only.
  for (const gc::ReflectionCall& call : result->reflection_calls) {
    metrics::TagSet tags;
    AddStatusTag(rt.system_tag("status"), tags, call.code);
    EmitCallSamples(rt.host(), rt.EncodeTags(&tags), call.elapsed, call.code,
                    ModuleState(rt).response_callback.get());
  }
  if (params.reflect) {
    auto registry = std::make_shared<gc::ProtoRegistry>();
    absl::StatusOr<std::vector<gc::MethodInfo>> loaded = registry->LoadProtoset(result->reflected, "reflection");
    if (!loaded.ok()) {
      result->connection->Close();
      return absl::InvalidArgumentError(absl::StrCat("can't load the reflected descriptors: ", loaded.status().message()));
    }
    client->registry = std::move(registry);
  }
  // A second connect replaces the connection (k6 leaks the old one; we drop
  // it: streams still open on it keep it until they end).
  if (client->connection) client->connection->Close();
  client->connection = std::move(result->connection);
  client->address = params.address;
  client->compression = compression;
  duk_push_true(ctx);
  return 1;
}

absl::StatusOr<int> CloseImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  // Streams still open are cancelled: they fire only `end` (spec §1.11).
  for (auto& [id, stream] : client->streams) {
    if (stream->call == nullptr) continue;
    stream->cancelled_by_script = true;
    stream->call->Cancel();
  }
  if (client->connection) client->connection->Close();
  client->connection.reset();
  return 0;
}

// {key: [values]} in the order keys first appear, built in place with room
// for every entry (object_access.h, as JSON.parse builds objects): no
// [[Get]] and [[Set]] per entry, which also met Object.prototype's
// properties for keys such as "constructor" or "__proto__".
void PushMetadata(duk_context* ctx, const std::vector<std::pair<std::string, std::string>>& md) {
  absl::InlinedVector<size_t, 8> firsts;  // the first entry of each key
  for (size_t i = 0; i < md.size(); ++i) {
    bool seen = false;
    for (size_t f : firsts) seen = seen || md[f].first == md[i].first;
    if (!seen) firsts.push_back(i);
  }
  PushObjectWithRoom(ctx, static_cast<duk_uint_t>(firsts.size()));
  for (size_t f : firsts) {
    const std::string& key = md[f].first;
    duk_uint_t count = 0;
    for (size_t i = f; i < md.size(); ++i) count += md[i].first == key;
    PushArrayWithRoom(ctx, count);
    duk_uarridx_t n = 0;
    for (size_t i = f; i < md.size(); ++i) {
      if (md[i].first != key) continue;
      duk_push_lstring(ctx, md[i].second.data(), md[i].second.size());
      DefineOwnIndex(ctx, -2, n++);
    }
    duk_set_length(ctx, -1, n);
    DefineOwnProperty(ctx, -2, key.data(), key.size());
  }
}

bool IsUint8Array(duk_context* ctx, duk_idx_t idx) {
  idx = duk_normalize_index(ctx, idx);
  if (!duk_is_object(ctx, idx)) return false;
  duk_get_global_string(ctx, "Uint8Array");
  const bool result = duk_instanceof(ctx, idx, -1);
  duk_pop(ctx);
  return result;
}

// Params.metadata (and connect's reflectMetadata), spec §1.8, with k6's
// texts ("invalid <param> param: ..."); null and undefined mean none.
absl::Status ReadMetadata(duk_context* ctx, duk_idx_t idx, const std::string& wrap, const char* param,
                          gc::Metadata& out) {
  idx = duk_normalize_index(ctx, idx);
  if (duk_is_undefined(ctx, idx) || duk_is_null(ctx, idx)) return absl::OkStatus();
  const std::string prefix = absl::StrCat(wrap, "invalid ", param, " param: ");
  if (!duk_is_object(ctx, idx) || duk_is_array(ctx, idx) || duk_is_function(ctx, idx)) {
    return absl::InvalidArgumentError(prefix + "must be an object with key-value pairs");
  }
  absl::Status st;
  duk_enum(ctx, idx, DUK_ENUM_OWN_PROPERTIES_ONLY);
  while (st.ok() && duk_next(ctx, -1, 1)) {
    const std::string raw = duk_safe_to_string(ctx, -2);
    std::string mkey = absl::AsciiStrToLower(raw);
    if (absl::EndsWith(mkey, "-bin")) {
      // k6 takes a Uint8Array (not an ArrayBuffer) for binary values.
      if (!IsUint8Array(ctx, -1)) {
        st = absl::InvalidArgumentError(absl::StrCat(prefix, "\"", raw, "\" value must be binary"));
      } else {
        duk_size_t n = 0;
        const char* data = static_cast<const char*>(duk_get_buffer_data(ctx, -1, &n));
        out.emplace_back(std::move(mkey), std::string(data, n));
      }
    } else if (!duk_is_string(ctx, -1)) {
      st = absl::InvalidArgumentError(absl::StrCat(prefix, "\"", raw, "\" value must be a string"));
    } else {
      out.emplace_back(std::move(mkey), GetUtf8(ctx, -1));
    }
    duk_pop_2(ctx);
  }
  duk_pop(ctx);
  return st;
}

// Params of invoke (and later Stream), spec §1.8, read natively: this runs
// once per call.
struct CallParams {
  gc::CallOptions options;
  metrics::TagSet tags;
  bool discard = false;
  bool has_compression = false;  // else the client's (connect's) default
  // responseCallback (issue 16), when given; else grpc.setResponseCallback's.
  bool has_response_callback = false;
  std::shared_ptr<const ExpectedStatuses> response_callback;
};
absl::Status ReadParams(duk_context* ctx, duk_idx_t idx, const std::string& wrap, absl::Duration default_timeout,
                        CallParams& out) {
  out.options.timeout = default_timeout;
  if (duk_is_undefined(ctx, idx) || duk_is_null(ctx, idx)) return absl::OkStatus();
  if (!duk_is_object(ctx, idx)) return absl::InvalidArgumentError(wrap + "params must be an object");
  absl::Status st;
  duk_enum(ctx, idx, DUK_ENUM_OWN_PROPERTIES_ONLY);
  while (st.ok() && duk_next(ctx, -1, 1)) {
    const std::string key = duk_safe_to_string(ctx, -2);
    if (key == "metadata") {
      st = ReadMetadata(ctx, -1, wrap, "metadata", out.options.metadata);
    } else if (key == "tags") {
      st = ReadMetricTags(ctx, -1, wrap + "metric tags: ", out.tags);
    } else if (key == "timeout") {
      if (duk_is_number(ctx, -1)) {
        double ms = duk_get_number(ctx, -1);
        if (ms != 0) out.options.timeout = DurationFromMillis(ms);
      } else if (duk_is_string(ctx, -1)) {
        absl::StatusOr<absl::Duration> d = ParseDuration(duk_get_string(ctx, -1));
        if (!d.ok()) {
          st = absl::InvalidArgumentError(absl::StrCat(wrap, "invalid timeout value: ", d.status().message()));
        } else if (*d != absl::ZeroDuration()) {
          out.options.timeout = *d;
        }
      } else {
        const char* type = duk_is_boolean(ctx, -1) ? "bool" : duk_is_object(ctx, -1) ? "object" : "undefined";
        st = absl::InvalidArgumentError(absl::StrCat(wrap, "invalid timeout value: unable to use type ", type, " as a duration value"));
      }
    } else if (key == "discardResponseMessage") {
      out.discard = duk_to_boolean(ctx, -1);
    } else if (key == "compression") {
      if (!duk_is_string(ctx, -1)) {
        st = absl::InvalidArgumentError(absl::StrCat(wrap, "invalid compression value: it needs to be a string"));
      } else if (absl::StatusOr<gc::Compression> c = gc::ParseCompression(duk_get_string(ctx, -1)); c.ok()) {
        out.options.compression = *c;
        out.has_compression = true;
      } else {
        st = absl::InvalidArgumentError(absl::StrCat(wrap, c.status().message()));
      }
    } else if (key == "responseCallback") {
      absl::StatusOr<std::shared_ptr<const ExpectedStatuses>> expected =
          ReadExpected(ctx, -1, wrap + "unsupported responseCallback, expected grpc.expectedStatuses");
      if (expected.ok()) {
        out.has_response_callback = true;
        out.response_callback = *std::move(expected);
      } else {
        st = expected.status();
      }
    } else {
      st = absl::InvalidArgumentError(absl::StrCat(wrap, "unknown param: \"", key, "\""));
    }
    duk_pop_2(ctx);
  }
  duk_pop(ctx);
  return st;
}

// The request's wire bytes (spec §1.6 step 7, §1.15), straight from the JS
// value through the input type's plan (agent/js/proto_codec.h). What
// JSON.stringify itself would refuse (a cycle, a throwing toJSON) throws
// its own text, as before; a value the type does not take gets k6's prefix.
absl::StatusOr<std::string> EncodeRequest(duk_context* ctx, duk_idx_t idx, const gc::ProtoRegistry& registry,
                                          const gc::MethodInfo& method, NonFinite non_finite, const char* prefix) {
  absl::StatusOr<std::string> bytes = EncodeMessage(ctx, idx, registry, *method.input_plan, non_finite);
  if (bytes.ok()) return bytes;
  if (absl::IsInvalidArgument(bytes.status())) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, bytes.status().message()));
  }
  return absl::InvalidArgumentError(bytes.status().message());
}

// What invoke and asyncInvoke send, after the checks in k6's order (spec §1.6).
struct PreparedCall {
  GrpcClientState* client = nullptr;
  std::shared_ptr<const gc::ProtoRegistry> registry;  // keeps method alive
  const gc::MethodInfo* method = nullptr;
  std::string request;
  CallParams params;
};

std::string NormaliseUrl(duk_context* ctx, duk_idx_t idx) {
  std::string url = duk_safe_to_string(ctx, idx);
  if (url.empty() || url[0] != '/') url.insert(0, "/");
  return url;
}

const char* StreamingKind(const gc::MethodInfo& m) {
  if (m.client_streaming && m.server_streaming) return "bidirectional streaming";
  return m.client_streaming ? "client streaming" : "server streaming";
}

// invoke(id, url, request, params) and asyncInvoke's arguments.
absl::StatusOr<PreparedCall> PrepareInvoke(duk_context* ctx, Runtime& rt, const char* fn) {
  if (rt.in_init()) return absl::InvalidArgumentError("invoking RPC methods in the init context is not supported");
  PreparedCall call;
  BARRAGE_ASSIGN_OR_RETURN(call.client, ClientAt(rt, ctx));
  if (call.client->connection == nullptr) return absl::InvalidArgumentError("no gRPC connection, you must call connect first");
  if (duk_is_undefined(ctx, 1) || duk_is_null(ctx, 1) || (duk_is_string(ctx, 1) && duk_get_length(ctx, 1) == 0)) {
    return absl::InvalidArgumentError("method to invoke cannot be empty");
  }
  const std::string url = NormaliseUrl(ctx, 1);
  call.registry = call.client->registry;
  call.method = call.registry ? call.registry->FindMethod(url) : nullptr;
  if (call.method == nullptr) return absl::NotFoundError(absl::StrCat("method \"", url, "\" not found in file descriptors"));
  if (call.method->client_streaming || call.method->server_streaming) {
    // grpc-go would send one message and fail the call on the second reply
    // (a cardinality violation); a clear error is more useful.
    return absl::InvalidArgumentError(absl::StrCat("method \"", url, "\" is a ", StreamingKind(*call.method),
                                                   " method: ", fn, " calls unary methods, use a grpc.Stream for it"));
  }
  BARRAGE_RETURN_IF_ERROR(ReadParams(ctx, 3, absl::StrCat("invalid GRPC's client.", fn, "() parameters: "),
                                     absl::Minutes(2), call.params));
  if (!call.params.has_compression) call.params.options.compression = call.client->compression;
  if (duk_is_undefined(ctx, 2)) return absl::InvalidArgumentError("request cannot be nil");
  if (duk_is_null(ctx, 2)) return absl::InvalidArgumentError("TypeError: request cannot be null");
  BARRAGE_ASSIGN_OR_RETURN(call.request, EncodeRequest(ctx, 2, *call.registry, *call.method, NonFinite::kAsStrings,
                                                      "unable to serialise request object to protocol buffer: "));
  return call;
}

// The sample's tags (spec §2.1): the call's tags, then the system tags
// systemTags enables; `status` only on grpc_req_duration (AddStatusTag).
void AddSystemTags(const Runtime& rt, metrics::TagSet& tags, const std::string& address,
                   const gc::MethodInfo& method) {
  // The user's `name` stays, as in k6.
  if (!tags.count("name") && rt.system_tag("name")) tags["name"] = method.full_method;
  if (rt.system_tag("method")) tags["method"] = method.method;
  // "/hello.HelloService/SayHello" -> "hello.HelloService"
  if (rt.system_tag("service")) tags["service"] = method.full_method.substr(1, method.full_method.rfind('/') - 1);
  if (rt.system_tag("url")) tags["url"] = absl::StrCat(address, method.full_method);
}


// The Response object (spec §1.9).
absl::Status PushResponse(duk_context* ctx, const gc::ProtoRegistry& registry, const gc::MethodInfo& method,
                          bool discard, const gc::CallResult& result) {
  // Room for its five properties up front, each defined in place (object_access.h).
  PushObjectWithRoom(ctx, 5);
  const duk_idx_t obj = duk_get_top_index(ctx);
  auto put = [ctx, obj](const char* literal) { DefineOwnLiteral(ctx, obj, literal); };
  duk_push_int(ctx, result.code);
  put("status");
  if (discard) {
    duk_push_null(ctx);
  } else {
    // On a non-OK status, the all-defaults message (spec §1.9).
    absl::Status st = PushDecodedMessage(ctx, registry, *method.output_plan,
                                         result.code == 0 ? std::string_view(result.response_bytes) : std::string_view());
    if (!st.ok()) {
      duk_pop(ctx);
      return absl::InternalError(absl::StrCat("unable to decode the response: ", st.message()));
    }
  }
  put("message");
  PushMetadata(ctx, result.headers);
  put("headers");
  PushMetadata(ctx, result.trailers);
  put("trailers");
  if (result.code == 0) {
    duk_push_null(ctx);
  } else {
    BARRAGE_RETURN_IF_ERROR(
        PushJson(ctx, gc::StatusErrorJson(registry, result.code, result.message, result.status_details_bin)));
  }
  put("error");
  return absl::OkStatus();
}

// What grpc_req_failed counts as success for a call with these params.
std::shared_ptr<const ExpectedStatuses> ExpectedFor(Runtime& rt, const CallParams& params) {
  return params.has_response_callback ? params.response_callback : ModuleState(rt).response_callback;
}

// The call's samples (EmitCallSamples) and its bytes.
void RecordCall(Runtime& rt, const CallParams& params, const std::string& address, const gc::MethodInfo& method,
                const gc::CallResult& result) {
  if (!result.started) return;
  // Everything the tags depend on but the VU's tags (tags_epoch) and
  // systemTags (fixed for the run).
  std::string key = rt.group();
  for (std::string_view part : {std::string_view(address), std::string_view(method.full_method)}) {
    key.push_back('\0');
    key.append(part);
  }
  key.push_back('\0');
  key += std::to_string(result.code);
  const std::shared_ptr<const ExpectedStatuses> expected = ExpectedFor(rt, params);
  Runtime::AppendTagsKey(key, params.tags);
  auto& cache = ModuleState(rt).call_series;
  auto it = cache.find(key);
  if (it == cache.end() || it->second.tags_epoch != rt.tags_epoch()) {
    metrics::TagSet tags = params.tags;
    AddSystemTags(rt, tags, address, method);
    AddStatusTag(rt.system_tag("status"), tags, result.code);
    GrpcModuleState::CallSeries series(rt.EncodeTags(&tags));
    series.tags_epoch = rt.tags_epoch();
    if (it != cache.end()) {
      it->second = std::move(series);
    } else {
      if (cache.size() >= 4096) cache.clear();  // high-cardinality tags: just misses
      it = cache.emplace(std::move(key), std::move(series)).first;
    }
  }
  EmitCallSamples(rt.host(), it->second, result.elapsed, result.code, expected.get());
  rt.AddData(result.bytes_sent, result.bytes_received);
}

// A unary call that blocks the VU (not its thread) until it completes; the
// VU context ending (gracefulStop, abort) cancels it, as k6's context does.
gc::CallResult BlockingUnaryCall(Runtime& rt, gc::Connection& connection, const gc::MethodInfo& method,
                                 std::string request, gc::CallOptions options) {
  gc::CallResult result;
  grpc::CompletionQueue* cq = rt.host().completion_queue();
  rt.host().Block([&](VuHost::Resume resume) {
    auto done = [&result, resume](gc::CallResult r) {
      result = std::move(r);
      resume();
    };
    if (cq == nullptr) {
      connection.UnaryCall(method, std::move(request), std::move(options), std::move(done));
      return;
    }
    grpc::ClientContext* context = connection.UnaryCall(method, std::move(request), std::move(options), cq,
                                                        [&rt, done = std::move(done)](gc::CallResult r) mutable {
                                                          rt.host().OnInterrupt(nullptr);
                                                          done(std::move(r));
                                                        });
    if (context != nullptr) rt.host().OnInterrupt([context] { context->TryCancel(); });
  });
  return result;
}

// invoke(id, url, request, params): blocks the VU (spec §1.6).
absl::StatusOr<int> InvokeImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(PreparedCall call, PrepareInvoke(ctx, rt, "invoke"));
  std::shared_ptr<gc::Connection> connection = call.client->connection;
  const gc::CallResult result =
      BlockingUnaryCall(rt, *connection, *call.method, std::move(call.request), std::move(call.params.options));
  RecordCall(rt, call.params, call.client->address, *call.method, result);
  BARRAGE_RETURN_IF_ERROR(PushResponse(ctx, *call.registry, *call.method, call.params.discard, result));
  return 1;
}

// Client.prototype.invoke(url, request, params) itself: a JS wrapper that
// only added `this._id` cost a call frame per request. The id goes in
// front of the arguments, then it is invoke(id, url, request, params).
absl::StatusOr<int> InvokeMethodImpl(duk_context* ctx, Runtime& rt) {
  duk_set_top(ctx, 3);
  duk_push_this(ctx);
  duk_get_prop_literal(ctx, -1, "_id");  // throws a TypeError for an undefined `this`, as the wrapper did
  duk_remove(ctx, -2);
  duk_insert(ctx, 0);
  return InvokeImpl(ctx, rt);
}

// asyncInvoke(id, url, request, params, settleId): the RPC runs in the
// background; its result settles the promise through __b.grpc.settle on the
// event loop (spec §1.7). Errors in the checks throw here and the JS half
// turns them into a rejection.
absl::StatusOr<int> AsyncInvokeImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(PreparedCall prepared, PrepareInvoke(ctx, rt, "asyncInvoke"));
  grpc::CompletionQueue* cq = rt.host().completion_queue();
  if (cq == nullptr) return absl::FailedPreconditionError("asyncInvoke needs an event loop, which this host lacks");
  const auto settle_id = JsNumberToInt64(duk_get_number(ctx, 4));
  struct Pending {
    grpc::ClientContext* context = nullptr;  // valid while the call runs
    bool done = false;
  };
  auto pending = std::make_shared<Pending>();
  auto call = std::make_shared<PreparedCall>(std::move(prepared));
  EventLoop& loop = rt.event_loop();
  const int64_t op = loop.Register([pending] {
    if (!pending->done && pending->context != nullptr) pending->context->TryCancel();
  });
  std::shared_ptr<gc::Connection> connection = call->client->connection;
  // The sample's tags as they are now (the group may have ended by the time
  // the reply comes), as k6 takes them when the call is made.
  metrics::TagSet tags = rt.SampleTags(&call->params.tags);
  AddSystemTags(rt, tags, call->client->address, *call->method);
  VuHost& host = rt.host();
  grpc::ClientContext* context = connection->UnaryCall(
      *call->method, std::move(call->request), call->params.options, cq,
      [&rt, &host, &loop, op, pending, call, tags = std::move(tags), settle_id,
       status_tag = rt.system_tag("status"), expected = ExpectedFor(rt, call->params)](gc::CallResult result) mutable {
        pending->done = true;
        if (result.started) {
          AddStatusTag(status_tag, tags, result.code);
                EmitCallSamples(host, metrics::EncodeTagSet(tags), result.elapsed, result.code, expected.get());
          rt.AddData(result.bytes_sent, result.bytes_received);
        }
        loop.Enqueue([call, settle_id, result = std::move(result)](duk_context* c) {
          duk_get_global_string(c, "__b");
          duk_get_prop_string(c, -1, "grpc");
          duk_get_prop_string(c, -1, "settle");
          duk_push_number(c, static_cast<double>(settle_id));
          bool ok = true;
          {  // no C++ object may live across duk_call: a throw longjmps
            absl::Status st = PushResponse(c, *call->registry, *call->method, call->params.discard, result);
            if (!st.ok()) {
              ok = false;
              const std::string message(st.message());
              duk_push_lstring(c, message.data(), message.size());
            }
          }
          duk_push_boolean(c, ok);
          duk_call(c, 3);
          duk_pop_3(c);
        });
        loop.Release(op);
      });
  if (!pending->done) pending->context = context;
  return 0;
}

// healthCheck(id, service): grpc.health.v1.Health/Check; an RPC error throws
// (spec §1.10). No timeout of its own: a long deadline stands in for one.
absl::StatusOr<int> HealthCheckImpl(duk_context* ctx, Runtime& rt) {
  if (rt.in_init()) return absl::InvalidArgumentError("health checks in the init context are not supported");
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  if (client->connection == nullptr) return absl::InvalidArgumentError("no gRPC connection, you must call connect first");
  static const gc::MethodInfo* const kCheck = [] {
    auto* m = new gc::MethodInfo;
    m->package = "grpc.health.v1";
    m->service = "Health";
    m->method = "Check";
    m->full_method = "/grpc.health.v1.Health/Check";
    return m;
  }();
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(duk_is_undefined(ctx, 1) ? "" : duk_safe_to_string(ctx, 1));
  // No timeout of its own (spec §1.10): it ends when the VU context does.
  gc::CallOptions options;
  options.timeout = absl::Hours(24);
  options.compression = client->compression;
  std::shared_ptr<gc::Connection> connection = client->connection;
  const gc::CallResult result = BlockingUnaryCall(rt, *connection, *kCheck, request.SerializeAsString(), options);
  metrics::TagSet tags;
  AddStatusTag(rt.system_tag("status"), tags, result.code);
  EmitCallSamples(rt.host(), rt.EncodeTags(&tags), result.elapsed, result.code,
                  ModuleState(rt).response_callback.get());
  rt.AddData(result.bytes_sent, result.bytes_received);
  if (result.code != 0) {
    return absl::UnavailableError(
        absl::StrCat("rpc error: code = ", gc::CodeName(result.code), " desc = ", result.message));
  }
  grpc::health::v1::HealthCheckResponse response;
  if (!response.ParseFromString(result.response_bytes)) {
    return absl::InternalError("health check: the reply is not a grpc.health.v1.HealthCheckResponse");
  }
  duk_push_object(ctx);
  duk_push_int(ctx, static_cast<int>(response.status()));
  duk_put_prop_string(ctx, -2, "status");
  return 1;
}


// ---- streams (spec §1.13) ------------------------------------------------------

// Queues a call of __b.grpc.dispatch(streamId, event, <json>, ts). The call
// is the task's last step: a handler that throws unwinds (longjmp) through
// no live C++ object.
void QueueDispatch(EventLoop& loop, int64_t stream_id, const char* event, std::string json, double ts) {
  loop.Enqueue([stream_id, event, json = std::move(json), ts](duk_context* c) {
    duk_get_global_string(c, "__b");
    duk_get_prop_string(c, -1, "grpc");
    duk_get_prop_string(c, -1, "dispatch");
    duk_push_number(c, static_cast<double>(stream_id));
    duk_push_string(c, event);
    {
      absl::Status st = PushJson(c, json.empty() ? "{}" : json);
      if (!st.ok()) duk_push_object(c);
    }
    duk_push_number(c, ts);
    duk_call(c, 4);
    duk_pop_3(c);
  });
}

// Queues a `data` event: the message is decoded into the heap when the task
// runs (the direct codec needs the heap). A message that does not decode
// fails the stream, as grpc-go's failed unmarshal does, and is not
// dispatched.
// A `data` event, dispatched here rather than through the JS dispatch
// (async.js), which it mirrors: each handler in turn, with the stream as
// `this`, the message and {ts}; handlers added meanwhile run too. The JS
// function cost about 9k instructions per message (issue 14), most of a
// streamed message's Duktape time. A handler that throws goes to
// n.dataThrew, which cancels the stream, tells the error handlers and
// rethrows.
void QueueDataDispatch(EventLoop& loop, std::shared_ptr<GrpcClientState::Stream> stream, int64_t stream_id,
                       std::string bytes, double ts) {
  loop.Enqueue([stream = std::move(stream), stream_id, bytes = std::move(bytes), ts](duk_context* c) {
    if (stream->discard) {
      duk_push_object(c);  // discardResponseMessage: {} (spec §1.8)
    } else if (absl::Status st = PushDecodedMessage(c, *stream->registry, *stream->method->output_plan, bytes);
               !st.ok()) {
      if (stream->call != nullptr) {
        stream->call->Fail(13, absl::StrCat("unable to decode the response: ", st.message()));
      }
      return;
    }
    const duk_idx_t arg = duk_get_top_index(c);
    // The stream object and its handlers from the pointers kept at open
    // (see GrpcClientState::Stream): no lookup of __b.grpc, the table of
    // open streams and the id per message (about 2k instructions).
    duk_push_heapptr(c, stream->js_self);
    const duk_idx_t self = duk_get_top_index(c);
    duk_push_heapptr(c, stream->js_handlers);
    duk_get_prop_literal(c, -1, "data");
    const duk_idx_t handlers = duk_get_top_index(c);
    // The event's metadata ({ts}), one object for all the handlers, made
    // only for a handler that can read it: most take (message) or nothing,
    // and Duktape drops an argument beyond a function's formals unless it
    // uses `arguments` (IgnoresArgument). Saves an object per message.
    duk_push_undefined(c);
    const duk_idx_t meta = duk_get_top_index(c);
    bool meta_made = false;
    for (duk_uarridx_t i = 0; i < duk_get_length(c, handlers); ++i) {
      duk_get_prop_index(c, handlers, i);
      if (!meta_made && !IgnoresArgument(c, -1, 1)) {
        PushObjectWithRoom(c, 1);
        duk_push_number(c, ts);
        DefineOwnLiteral(c, -2, "ts");
        duk_replace(c, meta);
        meta_made = true;
      }
      duk_dup(c, self);
      duk_dup(c, arg);
      duk_dup(c, meta);
      if (duk_pcall_method(c, 2) != DUK_EXEC_SUCCESS) {  // [... err]
        duk_get_global_literal(c, "__b");
        duk_get_prop_literal(c, -1, "grpc");
        duk_get_prop_literal(c, -1, "dataThrew");
        duk_dup(c, self);
        duk_push_number(c, static_cast<double>(stream_id));
        duk_dup(c, -6);
        duk_call(c, 3);  // throws the handler's error
      }
      duk_pop(c);
    }
    duk_set_top(c, arg);
  });
}

double UnixSeconds() { return static_cast<double>(absl::ToUnixSeconds(absl::Now())); }

// streamOpen(clientId, url, params, streamId, stream): stream is the Stream
// object, its _handlers already defined.
absl::StatusOr<int> StreamOpenImpl(duk_context* ctx, Runtime& rt) {
  if (rt.in_init()) return absl::InvalidArgumentError("creating a gRPC stream in the init context is not supported");
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  if (client->connection == nullptr) {
    return absl::InvalidArgumentError("invalid GRPC Stream's client: no gRPC connection, you must call connect first");
  }
  if (duk_is_undefined(ctx, 1) || duk_is_null(ctx, 1) || (duk_is_string(ctx, 1) && duk_get_length(ctx, 1) == 0)) {
    return absl::InvalidArgumentError("invalid GRPC Stream's method: method to invoke cannot be empty");
  }
  const std::string url = NormaliseUrl(ctx, 1);
  auto stream = std::make_shared<GrpcClientState::Stream>();
  stream->registry = client->registry;
  stream->method = stream->registry ? stream->registry->FindMethod(url) : nullptr;
  if (stream->method == nullptr) {
    return absl::NotFoundError(absl::StrCat("invalid GRPC Stream's method: method \"", url, "\" not found in file descriptors"));
  }
  CallParams params;
  BARRAGE_RETURN_IF_ERROR(ReadParams(ctx, 2, "invalid GRPC Stream's parameters: ", absl::InfiniteDuration(), params));
  if (!params.has_compression) params.options.compression = client->compression;
  // grpc-go refuses such metadata when the stream is created, and k6's
  // constructor throws that (spec §1.13.1).
  if (absl::Status st = gc::ValidateMetadata(params.options.metadata); !st.ok()) {
    return absl::InternalError(absl::StrCat("failed to create a new stream: rpc error: code = Internal desc = ", st.message()));
  }
  const auto stream_id = JsNumberToInt64(duk_get_number(ctx, 3));
  grpc::CompletionQueue* cq = rt.host().completion_queue();
  if (cq == nullptr) return absl::FailedPreconditionError("streams need an event loop, which this host lacks");
  if (!duk_is_object(ctx, 4)) return absl::InternalError("streamOpen: no Stream object");
  stream->js_self = duk_get_heapptr(ctx, 4);
  duk_get_prop_literal(ctx, 4, "_handlers");
  stream->js_handlers = duk_get_heapptr(ctx, -1);
  duk_pop(ctx);
  if (stream->js_handlers == nullptr) return absl::InternalError("streamOpen: the Stream has no _handlers");
  stream->discard = params.discard;
  stream->expected = ExpectedFor(rt, params);
  stream->tags = rt.SampleTags(&params.tags);
  AddSystemTags(rt, stream->tags, client->address, *stream->method);
  stream->counter_tags = metrics::EncodeTagSet(stream->tags);
  stream->msgs_received = metrics::SeriesRef("grpc_streams_msgs_received", stream->counter_tags);
  stream->msgs_sent = metrics::SeriesRef("grpc_streams_msgs_sent", stream->counter_tags);

  EventLoop& loop = rt.event_loop();
  VuHost& host = rt.host();
  std::weak_ptr<GrpcClientState::Stream> weak = stream;
  stream->loop_op = loop.Register([weak] {
    if (auto s = weak.lock(); s && s->call != nullptr) {
      s->cancelled_by_script = true;
      s->call->Cancel();
    }
  });
  gc::StreamCallHandlers handlers;
  handlers.on_message = [&host, &loop, stream, stream_id](std::string bytes) {
    host.EmitSeries(stream->msgs_received, 1);
    QueueDataDispatch(loop, stream, stream_id, std::move(bytes), UnixSeconds());
  };
  handlers.on_sent = [&host, stream] { host.EmitSeries(stream->msgs_sent, 1); };
  handlers.on_finish = [&rt, &host, &loop, client, stream, stream_id](gc::CallResult result) {
    stream->call = nullptr;
    client->streams.erase(stream_id);
    ModuleState(rt).stream_objects.erase(stream->js_self);
    metrics::TagSet tags = stream->tags;
    AddStatusTag(rt.system_tag("status"), tags, result.code);
    // A stream is one call for grpc_reqs and grpc_req_failed, counted when
    // it ends with its final status, as its grpc_req_duration sample is.
    EmitCallSamples(host, metrics::EncodeTagSet(tags), result.elapsed, result.code, stream->expected.get(),
                    stream->cancelled_by_script && result.code == 1);
    rt.AddData(result.bytes_sent, result.bytes_received);
    // Cancelled is a normal close: `end` only. Any other failure: `error`,
    // then `end` in a later task (spec §1.13.4).
    if (result.code != 0 && result.code != 1) {
      QueueDispatch(loop, stream_id, "error",
                    gc::StatusErrorJson(*stream->registry, result.code, result.message, result.status_details_bin),
                    0);
    }
    QueueDispatch(loop, stream_id, "end", "", 0);
    loop.Release(stream->loop_op);
  };
  host.Emit("grpc_streams", stream->counter_tags, 1);
  stream->call = client->connection->StartStream(
      *stream->method, params.options,
      params.options.timeout == absl::InfiniteDuration() ? std::nullopt : std::optional<absl::Duration>(params.options.timeout),
      cq, std::move(handlers));
  if (stream->call == nullptr) {
    loop.Release(stream->loop_op);
    return absl::UnavailableError("failed to create a new stream: the connection is closed");
  }
  client->streams[stream_id] = stream;
  ModuleState(rt).stream_objects[stream->js_self] = {duk_get_int(ctx, 0), stream_id};
  return 0;
}

GrpcClientState::Stream* FindStreamById(Runtime& rt, int64_t client_id, int64_t stream_id) {
  auto& clients = rt.grpc_clients();
  if (client_id < 0 || static_cast<size_t>(client_id) >= clients.size()) return nullptr;
  auto it = clients[client_id]->streams.find(stream_id);
  if (it == clients[client_id]->streams.end() || it->second->call == nullptr) return nullptr;
  return it->second.get();
}

// (clientId, streamId) as the first two arguments.
GrpcClientState::Stream* FindStream(duk_context* ctx, Runtime& rt) {
  return FindStreamById(rt, duk_get_int_default(ctx, 0, -1), JsNumberToInt64(duk_get_number_default(ctx, 1, -1)));
}

// stream.write(message) itself (Stream.prototype.write), native because it
// runs once per message: never throws but for a message JSON cannot encode
// (spec §1.13.3).
absl::StatusOr<int> StreamWriteImpl(duk_context* ctx, Runtime& rt) {
  duk_push_this(ctx);
  int client_id = -1;
  int64_t stream_id = -1;
  GrpcClientState::Stream* stream = nullptr;
  // An open stream is found by its object, without reading _ended, _client
  // and _id from it (about 1k instructions per message); `ended` mirrors
  // _ended, which only end() sets. Any other `this` (a finished stream, a
  // foreign object) takes the properties' way, as before.
  const GrpcModuleState& module = ModuleState(rt);
  if (auto it = module.stream_objects.find(duk_get_heapptr(ctx, -1)); it != module.stream_objects.end()) {
    duk_pop(ctx);
    std::tie(client_id, stream_id) = it->second;
    stream = FindStreamById(rt, client_id, stream_id);
    if (stream != nullptr && stream->ended) return 0;  // after end(): silently ignored
  } else {
    duk_get_prop_literal(ctx, -1, "_ended");
    const bool ended = duk_to_boolean(ctx, -1);
    duk_get_prop_literal(ctx, -2, "_client");
    client_id = duk_get_int_default(ctx, -1, -1);
    duk_get_prop_literal(ctx, -3, "_id");
    stream_id = JsNumberToInt64(duk_get_number_default(ctx, -1, -1));
    duk_pop_n(ctx, 4);
    if (ended) return 0;  // after end(): silently ignored
    stream = FindStreamById(rt, client_id, stream_id);
  }
  if (duk_is_null_or_undefined(ctx, 0)) {
    rt.host().Log(LogLevel::kWarning, "can't send empty message");
    return 0;
  }
  if (stream == nullptr) {
    rt.host().Log(LogLevel::kDebug, "stream write ignored: the server has closed the stream");
    return 0;
  }
  // No NaN normalisation here, unlike invoke (spec §1.13.3). What
  // JSON.stringify refuses throws; a value the type does not take fails the
  // stream asynchronously.
  // Held here: a getter run by the encoding may end the stream.
  const std::shared_ptr<const gc::ProtoRegistry> registry = stream->registry;
  absl::StatusOr<std::string> bytes =
      EncodeMessage(ctx, 0, *registry, *stream->method->input_plan, NonFinite::kAsNull);
  if (!bytes.ok() && !absl::IsInvalidArgument(bytes.status())) {
    return absl::InvalidArgumentError(bytes.status().message());
  }
  // A getter may have ended the stream meanwhile.
  stream = FindStreamById(rt, client_id, stream_id);
  if (stream == nullptr) return 0;
  if (!bytes.ok()) {
    stream->call->Fail(2, absl::StrCat("can't serialise request object to protocol buffer: ", bytes.status().message()));
    return 0;
  }
  stream->call->Write(*std::move(bytes));
  return 0;
}

absl::StatusOr<int> StreamEndImpl(duk_context* ctx, Runtime& rt) {
  if (GrpcClientState::Stream* stream = FindStream(ctx, rt)) {
    stream->ended = true;
    stream->call->WritesDone();
  }
  return 0;
}

absl::StatusOr<int> StreamCancelImpl(duk_context* ctx, Runtime& rt) {
  if (GrpcClientState::Stream* stream = FindStream(ctx, rt)) {
    stream->cancelled_by_script = true;
    stream->call->Cancel();
  }
  return 0;
}

// Client.prototype.connect(address, params). Native for what scripts pass
// most: a string address and params of the right types (or none). Anything
// else (tls, reflectMetadata, a value k6 refuses, an unknown name) goes to
// the JS of grpc_connect_js.inc, loaded on first need, which checks in k6's
// order with k6's texts: the same function every heap carried before
// (about 10 KB each). For the parameters taken here, the object handed to
// ConnectImpl is the one that JS builds.
absl::StatusOr<int> ClientConnectImpl(duk_context* ctx, Runtime& rt) {
  if (rt.in_init()) {
    return absl::InvalidArgumentError("connecting to a gRPC server in the init context is not supported");
  }
  // [address params]
  duk_push_object(ctx);  // p, at 2
  duk_push_false(ctx);
  duk_put_prop_string(ctx, 2, "plaintext");
  duk_push_int(ctx, 60000);
  duk_put_prop_string(ctx, 2, "timeout");
  duk_push_int(ctx, 0);
  duk_put_prop_string(ctx, 2, "maxReceiveSize");
  duk_push_int(ctx, 0);
  duk_put_prop_string(ctx, 2, "maxSendSize");
  duk_push_string(ctx, "");
  duk_put_prop_string(ctx, 2, "authority");
  duk_push_false(ctx);
  duk_put_prop_string(ctx, 2, "reflect");
  bool native = duk_is_string(ctx, 0);
  if (native && !duk_is_null_or_undefined(ctx, 1)) {
    native = duk_is_object(ctx, 1) && !duk_is_function(ctx, 1);
    if (native) duk_enum(ctx, 1, DUK_ENUM_OWN_PROPERTIES_ONLY);  // Object.keys' order
    while (native && duk_next(ctx, -1, /*get_value=*/1)) {
      // [... enum key v]
      duk_size_t key_len = 0;
      const char* key = duk_safe_to_lstring(ctx, -2, &key_len);
      const std::string k(key, key_len);
      auto integer = [](double v) { return std::isfinite(v) && std::floor(v) == v; };
      if (k == "plaintext" || k == "reflect") {
        native = duk_is_boolean(ctx, -1);
      } else if (k == "timeout") {
        if (duk_is_string(ctx, -1)) {
          absl::StatusOr<absl::Duration> d = ParseDuration(duk_get_string(ctx, -1));
          native = d.ok();
          if (native) {
            duk_pop(ctx);
            duk_push_number(ctx, absl::ToDoubleMilliseconds(*d));
          }
        } else {
          native = duk_is_number(ctx, -1);
        }
      } else if (k == "maxReceiveSize" || k == "maxSendSize") {
        // Past 2^63 goja exports a float64, which k6 refuses.
        const double v = duk_is_number(ctx, -1) ? duk_get_number(ctx, -1) : -1;
        native = integer(v) && v >= 0 && v < 9223372036854775808.0;
      } else if (k == "authority" || k == "compression") {
        native = duk_is_string(ctx, -1);
      } else if (k == "connectionSharing") {
        if (duk_is_boolean(ctx, -1)) {
          const bool share = duk_get_boolean(ctx, -1);
          duk_pop(ctx);
          duk_push_int(ctx, share ? -1 : 0);  // -1: no limit
        } else {
          native = duk_is_number(ctx, -1) && integer(duk_get_number(ctx, -1)) && duk_get_number(ctx, -1) >= 1;
        }
      } else {
        native = false;  // tls, reflectMetadata, unknown names
      }
      if (native) duk_put_prop_lstring(ctx, 2, k.data(), k.size());
      duk_set_top(ctx, 4);  // [address params p enum]
    }
  }
  if (!native) {
    duk_set_top(ctx, 2);
    duk_get_global_string(ctx, "__b");
    duk_get_prop_string(ctx, -1, "loadLibrary");
    duk_push_string(ctx, "grpc-connect");
    duk_call(ctx, 1);
    duk_pop(ctx);
    duk_get_prop_string(ctx, -1, "grpc");
    duk_get_prop_string(ctx, -1, "connectJs");
    duk_push_this(ctx);
    duk_dup(ctx, 0);
    duk_dup(ctx, 1);
    duk_call_method(ctx, 2);
    return 1;
  }
  // ConnectImpl's arguments: [id address p].
  duk_set_top(ctx, 3);
  duk_remove(ctx, 1);
  duk_push_this(ctx);
  duk_get_prop_string(ctx, -1, "_id");
  duk_remove(ctx, -2);
  duk_insert(ctx, 0);
  BARRAGE_RETURN_IF_ERROR(ConnectImpl(ctx, rt).status());
  duk_push_true(ctx);
  return 1;
}

}  // namespace

void InstallGrpcModule(duk_context* ctx) {
  // [.. __b]
  duk_push_object(ctx);
  // Lightweight functions (values.h), but for the two scripts see as
  // Client.prototype.invoke and Stream.prototype.write.
  PutHiddenFunction(ctx, -1, "newClient", Native<NewClientImpl>, 0);
  PutHiddenFunction(ctx, -1, "load", Native<LoadImpl>, 3);
  PutHiddenFunction(ctx, -1, "loadProtoset", Native<LoadProtosetImpl>, 2);
  PutHiddenFunction(ctx, -1, "connected", Native<ConnectedImpl>, 1);
  PutHiddenFunction(ctx, -1, "hasMethod", Native<HasMethodImpl>, 2);
  PutHiddenFunction(ctx, -1, "parseDuration", Native<ParseDurationImpl>, 1);
  PutHiddenFunction(ctx, -1, "connect", Native<ConnectImpl>, 3);
  PutHiddenFunction(ctx, -1, "close", Native<CloseImpl>, 1);
  PutHiddenFunction(ctx, -1, "invoke", Native<InvokeImpl>, 4);
  PutFunction(ctx, -1, "invokeMethod", Native<InvokeMethodImpl>, 3);
  PutHiddenFunction(ctx, -1, "asyncInvoke", Native<AsyncInvokeImpl>, 5);
  PutHiddenFunction(ctx, -1, "healthCheck", Native<HealthCheckImpl>, 2);
  PutHiddenFunction(ctx, -1, "streamOpen", Native<StreamOpenImpl>, 5);
  PutFunction(ctx, -1, "streamWrite", Native<StreamWriteImpl>, 1);
  PutHiddenFunction(ctx, -1, "streamEnd", Native<StreamEndImpl>, 2);
  PutHiddenFunction(ctx, -1, "streamCancel", Native<StreamCancelImpl>, 2);
  PutHiddenFunction(ctx, -1, "expectedStatuses", Native<ExpectedStatusesImpl>, 1);
  PutHiddenFunction(ctx, -1, "setResponseCallback", Native<SetResponseCallbackImpl>, 1);
  duk_put_prop_string(ctx, -2, "grpc");
  RunEmbeddedInstaller(ctx, "barrage:k6/net/grpc.js", kGrpcJs);
  // Client.prototype.connect: a function object, as scripts see it (length
  // 2 and name "", as the JS function it replaces).
  duk_get_prop_string(ctx, -1, "modules");
  duk_get_prop_string(ctx, -1, "k6/net/grpc");
  duk_get_prop_string(ctx, -1, "Client");
  duk_get_prop_string(ctx, -1, "prototype");
  PutFunction(ctx, -1, "connect", Native<ClientConnectImpl>, 2);
  duk_pop_n(ctx, 4);
}

}  // namespace barrage::agent::js
