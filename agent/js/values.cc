#include "agent/js/values.h"

#include <cstdio>
#include <cstring>

#include "agent/js/duktape/heap.h"
#include "agent/js/runtime.h"
#include "agent/js/safe_call.h"

namespace barrage::agent::js {

Runtime& RuntimeFrom(duk_context* ctx) { return Runtime::From(ctx); }

std::string ErrorText(duk_context* ctx, duk_idx_t idx) {
  // duk_safe_to_stacktrace gives "Error: msg\n    at fn (file:line) ..." for
  // errors and the plain string for anything else thrown.
  return duk_safe_to_stacktrace(ctx, idx);
}

absl::StatusOr<std::string> SafeJsonEncode(duk_context* ctx, duk_idx_t idx) {
  idx = duk_normalize_index(ctx, idx);
  if (duk_is_undefined(ctx, idx)) return std::string();
  duk_dup(ctx, idx);
  auto encode = [](duk_context* c, void*) -> duk_ret_t {
    duk_json_encode(c, -1);
    return 1;
  };
  if (duk_safe_call(ctx, encode, nullptr, 1, 1) != DUK_EXEC_SUCCESS) {
    std::string message = duk_safe_to_string(ctx, -1);
    duk_pop(ctx);
    if (message.find("cyclic") != std::string::npos) {
      return absl::InvalidArgumentError("cyclic reference to an object found");
    }
    return absl::InvalidArgumentError(message);
  }
  std::string out;
  if (duk_is_string(ctx, -1)) out = duk_get_string(ctx, -1);
  duk_pop(ctx);
  return out;
}

absl::Status PushJson(duk_context* ctx, std::string_view json) {
  duk_push_lstring(ctx, json.data(), json.size());
  auto decode = [](duk_context* c, void*) -> duk_ret_t {
    duk_json_decode(c, -1);
    return 1;
  };
  if (duk_safe_call(ctx, decode, nullptr, 1, 1) != DUK_EXEC_SUCCESS) {
    std::string message = duk_safe_to_string(ctx, -1);
    duk_pop(ctx);
    duk_push_undefined(ctx);
    return absl::InternalError("decoding JSON: " + message);
  }
  return absl::OkStatus();
}

metrics::TagSet ReadStringMap(duk_context* ctx, duk_idx_t idx) {
  metrics::TagSet out;
  if (!duk_is_object(ctx, idx)) return out;
  duk_enum(ctx, idx, DUK_ENUM_OWN_PROPERTIES_ONLY);
  while (duk_next(ctx, -1, /*get_value=*/1)) {
    out[duk_safe_to_string(ctx, -2)] = duk_safe_to_string(ctx, -1);
    duk_pop_2(ctx);
  }
  duk_pop(ctx);
  return out;
}

void PutFunction(duk_context* ctx, duk_idx_t obj_idx, const char* name, duk_c_function fn,
                 duk_idx_t nargs) {
  obj_idx = duk_normalize_index(ctx, obj_idx);
  duk_push_c_function(ctx, fn, nargs);
  duk_put_prop_string(ctx, obj_idx, name);
}

}  // namespace barrage::agent::js

#include <mutex>
#include <unordered_map>

namespace barrage::agent::js {

void PushEmbeddedScript(duk_context* ctx, const char* name, std::string_view source, duk_uint_t flags) {
  static std::mutex mu;
  static auto* cache = new std::unordered_map<const char*, std::string>();
  std::string bytecode;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache->find(name);
    if (it == cache->end()) {
      duk_context* scratch = CreateHeap(nullptr);
      duk_push_string(scratch, name);
      if (duk_pcompile_lstring_filename(scratch, flags, source.data(), source.size()) != 0) {
        // Our own code: a failure here is a build defect, caught by every test.
        fprintf(stderr, "barrage: internal script %s does not compile: %s\n", name, duk_safe_to_string(scratch, -1));
        abort();
      }
      duk_dump_function(scratch);
      duk_size_t size = 0;
      const char* data = static_cast<const char*>(duk_get_buffer(scratch, -1, &size));
      it = cache->emplace(name, std::string(data, size)).first;
      duk_destroy_heap(scratch);
    }
    bytecode = it->second;
  }
  void* buf = duk_push_fixed_buffer(ctx, bytecode.size());
  memcpy(buf, bytecode.data(), bytecode.size());
  duk_load_function(ctx);
}

void RunEmbeddedInstaller(duk_context* ctx, const char* name, std::string_view source) {
  PushEmbeddedScript(ctx, name, source, 0);
  duk_call(ctx, 0);  // the program evaluates to the installer function
  duk_dup(ctx, -2);
  duk_call(ctx, 1);
  duk_pop(ctx);
}

}  // namespace barrage::agent::js
