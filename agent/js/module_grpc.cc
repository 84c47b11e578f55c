#include "agent/js/module_grpc.h"

#include <mutex>
#include <optional>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/js/runtime.h"
#include "agent/js/values.h"
#include "common/duration.h"
#include "common/status_macros.h"

namespace barrage::agent::js {
namespace {

namespace gc = ::barrage::agent::grpc_client;

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
    out.emplace_back(duk_safe_to_string(ctx, -1));
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

std::string ResolveAgainst(const std::string& dir, const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  return absl::StrCat(dir, "/", p);
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

absl::StatusOr<int> LoadImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  const std::string dir = rt.MainDir();
  std::vector<std::string> import_paths = ReadStringArray(ctx, 1);
  for (std::string& p : import_paths) p = ResolveAgainst(dir, p);
  if (import_paths.empty()) import_paths.push_back(dir);
  std::vector<std::string> files = ReadStringArray(ctx, 2);
  const std::string call = absl::StrCat("load:", absl::StrJoin(import_paths, ","), ":", absl::StrJoin(files, ","));
  return LoadCommon(ctx, rt, *client, call, [&](gc::ProtoRegistry& registry) {
    return registry.Load(import_paths, files, [&rt](const std::string& path) { return rt.ReadFile(path); });
  });
}

absl::StatusOr<int> LoadProtosetImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  const std::string path = ResolveAgainst(rt.MainDir(), duk_safe_to_string(ctx, 1));
  return LoadCommon(ctx, rt, *client, "protoset:" + path, [&](gc::ProtoRegistry& registry)
                        -> absl::StatusOr<std::vector<gc::MethodInfo>> {
    absl::StatusOr<std::string> bytes = rt.ReadFile(path);
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

absl::StatusOr<int> ConnectImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  gc::ConnectParams params;
  params.address = duk_safe_to_string(ctx, 1);
  duk_get_prop_string(ctx, 2, "plaintext");
  params.plaintext = duk_to_boolean(ctx, -1);
  duk_get_prop_string(ctx, 2, "timeout");
  params.timeout = DurationFromMillis(duk_get_number_default(ctx, -1, 60000));
  duk_get_prop_string(ctx, 2, "maxReceiveSize");
  params.max_receive_size = static_cast<int64_t>(duk_get_number_default(ctx, -1, 0));
  duk_get_prop_string(ctx, 2, "maxSendSize");
  params.max_send_size = static_cast<int64_t>(duk_get_number_default(ctx, -1, 0));
  duk_get_prop_string(ctx, 2, "authority");
  params.authority = duk_safe_to_string(ctx, -1);
  duk_pop_n(ctx, 5);
  params.user_agent = "Barrage/0.1.0";
  absl::StatusOr<std::shared_ptr<gc::Connection>> result = absl::UnknownError("connect did not finish");
  rt.host().Block([&](VuHost::Resume resume) {
    gc::Connection::Connect(params, [&result, resume](absl::StatusOr<std::shared_ptr<gc::Connection>> r) {
      result = std::move(r);
      resume();
    });
  });
  if (!result.ok()) return result.status();
  // A second connect replaces the connection (k6 leaks the old one; we drop it).
  if (client->connection) client->connection->Close();
  client->connection = *std::move(result);
  client->address = params.address;
  duk_push_true(ctx);
  return 1;
}

absl::StatusOr<int> CloseImpl(duk_context* ctx, Runtime& rt) {
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  if (client->connection) client->connection->Close();
  client->connection.reset();
  return 0;
}

void PushMetadata(duk_context* ctx, const std::vector<std::pair<std::string, std::string>>& md) {
  duk_push_object(ctx);
  for (const auto& [k, v] : md) {
    if (!duk_get_prop_lstring(ctx, -1, k.data(), k.size())) {
      duk_pop(ctx);
      duk_push_array(ctx);
      duk_dup(ctx, -1);
      duk_put_prop_lstring(ctx, -3, k.data(), k.size());
    }
    duk_push_lstring(ctx, v.data(), v.size());
    duk_put_prop_index(ctx, -2, static_cast<duk_uarridx_t>(duk_get_length(ctx, -2)));
    duk_pop(ctx);
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

// Params of invoke (and later Stream), spec §1.8, read natively: this runs
// once per call.
struct CallParams {
  gc::CallOptions options;
  metrics::TagSet tags;
  bool discard = false;
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
      if (!duk_is_object(ctx, -1) || duk_is_null(ctx, -1)) {
        st = absl::InvalidArgumentError(wrap + "invalid metadata param: metadata must be an object with key-value pairs");
      } else {
        duk_enum(ctx, -1, DUK_ENUM_OWN_PROPERTIES_ONLY);
        while (st.ok() && duk_next(ctx, -1, 1)) {
          const std::string raw = duk_safe_to_string(ctx, -2);
          std::string mkey = absl::AsciiStrToLower(raw);
          if (absl::EndsWith(mkey, "-bin")) {
            // k6 takes a Uint8Array (not an ArrayBuffer) for binary values.
            if (!IsUint8Array(ctx, -1)) {
              st = absl::InvalidArgumentError(absl::StrCat(wrap, "invalid metadata param: \"", raw, "\" value must be binary"));
            }
            if (st.ok()) {
              duk_size_t n = 0;
              const char* data = static_cast<const char*>(duk_get_buffer_data(ctx, -1, &n));
              out.options.metadata.emplace_back(std::move(mkey), std::string(data, n));
            }
          } else if (!duk_is_string(ctx, -1)) {
            st = absl::InvalidArgumentError(absl::StrCat(wrap, "invalid metadata param: \"", raw, "\" value must be a string"));
          } else {
            out.options.metadata.emplace_back(std::move(mkey), duk_get_string(ctx, -1));
          }
          duk_pop_2(ctx);
        }
        duk_pop(ctx);
      }
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
    } else {
      st = absl::InvalidArgumentError(absl::StrCat(wrap, "unknown param: \"", key, "\""));
    }
    duk_pop_2(ctx);
  }
  duk_pop(ctx);
  return st;
}

// The request as JSON (spec §1.6 step 7). Duktape's JSON encoder runs in C;
// it writes NaN and Infinity as null, which k6 (v1.2+) sends as the strings
// "NaN"/"Infinity". So when the text has a null, the JS normaliser (deep
// copy with those strings) runs first; requests rarely hold nulls.
absl::StatusOr<std::string> EncodeRequest(duk_context* ctx, duk_idx_t idx) {
  BARRAGE_ASSIGN_OR_RETURN(std::string json, SafeJsonEncode(ctx, idx));
  if (json.find("null") == std::string::npos) return json;
  duk_get_global_string(ctx, "__b");
  duk_get_prop_string(ctx, -1, "grpc");
  duk_get_prop_string(ctx, -1, "normalise");
  duk_dup(ctx, idx);
  if (duk_pcall(ctx, 1) != DUK_EXEC_SUCCESS) {
    std::string message = duk_safe_to_string(ctx, -1);
    duk_pop_3(ctx);
    if (absl::StartsWith(message, "Error: ")) message = message.substr(7);
    return absl::InvalidArgumentError(message);
  }
  absl::StatusOr<std::string> normalised = SafeJsonEncode(ctx, -1);
  duk_pop_3(ctx);
  return normalised;
}

// invoke(id, url, request, params): the checks in k6's order (spec §1.6).
absl::StatusOr<int> InvokeImpl(duk_context* ctx, Runtime& rt) {
  if (rt.in_init()) return absl::InvalidArgumentError("invoking RPC methods in the init context is not supported");
  BARRAGE_ASSIGN_OR_RETURN(GrpcClientState * client, ClientAt(rt, ctx));
  if (client->connection == nullptr) return absl::InvalidArgumentError("no gRPC connection, you must call connect first");
  if (duk_is_undefined(ctx, 1) || duk_is_null(ctx, 1) || (duk_is_string(ctx, 1) && duk_get_length(ctx, 1) == 0)) {
    return absl::InvalidArgumentError("method to invoke cannot be empty");
  }
  std::string url = duk_safe_to_string(ctx, 1);
  if (url[0] != '/') url.insert(0, "/");
  const gc::MethodInfo* method = client->registry ? client->registry->FindMethod(url) : nullptr;
  if (method == nullptr) return absl::NotFoundError(absl::StrCat("method \"", url, "\" not found in file descriptors"));
  CallParams params;
  BARRAGE_RETURN_IF_ERROR(ReadParams(ctx, 3, "invalid GRPC's client.invoke() parameters: ", absl::Minutes(2), params));
  if (duk_is_undefined(ctx, 2)) return absl::InvalidArgumentError("request cannot be nil");
  if (duk_is_null(ctx, 2)) return absl::InvalidArgumentError("TypeError: request cannot be null");
  BARRAGE_ASSIGN_OR_RETURN(std::string json, EncodeRequest(ctx, 2));
  absl::StatusOr<std::string> request = gc::JsonToBinary(*client->registry, method->descriptor->input_type(), json);
  if (!request.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unable to serialise request object to protocol buffer: ", request.status().message()));
  }

  gc::CallResult result;
  std::shared_ptr<gc::Connection> connection = client->connection;
  grpc::CompletionQueue* cq = rt.host().completion_queue();
  rt.host().Block([&](VuHost::Resume resume) {
    auto done = [&result, resume](gc::CallResult r) {
      result = std::move(r);
      resume();
    };
    if (cq != nullptr) {
      connection->UnaryCall(*method, *std::move(request), std::move(params.options), cq, std::move(done));
    } else {
      connection->UnaryCall(*method, *std::move(request), std::move(params.options), std::move(done));
    }
  });

  // The sample (spec §2.1): the call's tags, then the system tags.
  metrics::TagSet& tags = params.tags;
  if (!tags.count("name")) tags["name"] = method->full_method;
  tags["method"] = method->method;
  // "/hello.HelloService/SayHello" -> "hello.HelloService"
  tags["service"] = method->full_method.substr(1, method->full_method.rfind('/') - 1);
  tags["url"] = absl::StrCat(client->address, method->full_method);
  tags["status"] = absl::StrCat(result.code);
  rt.EmitSample("grpc_req_duration", absl::ToDoubleMilliseconds(result.elapsed), &tags);
  rt.AddData(result.bytes_sent, result.bytes_received);

  // The Response object (spec §1.9).
  duk_push_object(ctx);
  duk_push_int(ctx, result.code);
  duk_put_prop_string(ctx, -2, "status");
  const google::protobuf::Descriptor* output = method->descriptor->output_type();
  if (params.discard) {
    duk_push_null(ctx);
  } else {
    absl::StatusOr<std::string> message = result.code == 0
        ? gc::BinaryToJson(*client->registry, output, result.response_bytes)
        : gc::DefaultJson(*client->registry, output);
    if (!message.ok()) return absl::InternalError(absl::StrCat("unable to decode the response: ", message.status().message()));
    BARRAGE_RETURN_IF_ERROR(PushJson(ctx, *message));
  }
  duk_put_prop_string(ctx, -2, "message");
  PushMetadata(ctx, result.headers);
  duk_put_prop_string(ctx, -2, "headers");
  PushMetadata(ctx, result.trailers);
  duk_put_prop_string(ctx, -2, "trailers");
  if (result.code == 0) {
    duk_push_null(ctx);
  } else {
    std::string error = gc::StatusErrorJson(*client->registry, result.code, result.message, result.status_details_bin);
    BARRAGE_RETURN_IF_ERROR(PushJson(ctx, error));
  }
  duk_put_prop_string(ctx, -2, "error");
  return 1;
}

}  // namespace

void InstallGrpcModule(duk_context* ctx) {
  // [.. __b]
  duk_push_object(ctx);
  PutFunction(ctx, -1, "newClient", Native<NewClientImpl>, 0);
  PutFunction(ctx, -1, "load", Native<LoadImpl>, 3);
  PutFunction(ctx, -1, "loadProtoset", Native<LoadProtosetImpl>, 2);
  PutFunction(ctx, -1, "connected", Native<ConnectedImpl>, 1);
  PutFunction(ctx, -1, "hasMethod", Native<HasMethodImpl>, 2);
  PutFunction(ctx, -1, "parseDuration", Native<ParseDurationImpl>, 1);
  PutFunction(ctx, -1, "connect", Native<ConnectImpl>, 3);
  PutFunction(ctx, -1, "close", Native<CloseImpl>, 1);
  PutFunction(ctx, -1, "invoke", Native<InvokeImpl>, 4);
  duk_put_prop_string(ctx, -2, "grpc");
  RunEmbeddedInstaller(ctx, "barrage:k6/net/grpc.js", kGrpcJs);
}

}  // namespace barrage::agent::js
