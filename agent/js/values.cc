#include "agent/js/values.h"

#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#include "agent/js/cesu8.h"
#include "agent/js/duktape/heap.h"
#include "agent/js/runtime.h"
#include "agent/js/safe_call.h"

namespace barrage::agent::js {

Runtime& RuntimeFrom(duk_context* ctx) { return Runtime::From(ctx); }

// Duktape's frames read "    at NAME (FILE:LINE) FLAGS": the flags
// ("strict preventsyield") mean nothing to a script's author, frames inside
// Duktape's own C files ("duk_js_var.c:1236 internal") or ours (an error
// made in a native: "runtime.cc:404 internal") and our embedded
// scripts ("barrage:prelude.js") are not theirs, nor is the code Babel
// added to a module (its helpers: line 0, see common/line_map.h), and
// "[anon]" is how Duktape names a function without one. Kept:
// "    at NAME (FILE:LINE)", "    at FILE:LINE" for anonymous functions as
// goja prints them, and "    at NAME (native)" for built-ins.
std::string CleanStackTrace(absl::string_view trace) {
  std::string out;
  size_t start = 0;
  bool first = true;
  while (start <= trace.size()) {
    size_t end = trace.find('\n', start);
    if (end == absl::string_view::npos) end = trace.size();
    absl::string_view line = trace.substr(start, end - start);
    start = end + 1;
    constexpr absl::string_view kAt = "    at ";
    const size_t open = line.find(" (");
    const size_t close = line.find(')', open == absl::string_view::npos ? 0 : open);
    if (first || !absl::StartsWith(line, kAt) || open == absl::string_view::npos || close == absl::string_view::npos) {
      if (!first) out.push_back('\n');
      absl::StrAppend(&out, line);
      first = false;
      continue;
    }
    const absl::string_view name = line.substr(kAt.size(), open - kAt.size());
    const absl::string_view where = line.substr(open + 2, close - open - 2);
    const size_t colon = where.rfind(':');
    const absl::string_view file = colon == absl::string_view::npos ? where : where.substr(0, colon);
    const bool babel_helper = colon != absl::string_view::npos && where.substr(colon + 1) == "0";
    if (absl::EndsWith(file, ".c") || absl::EndsWith(line, " internal") || absl::StartsWith(where, "barrage:") ||
        babel_helper) {
      continue;
    }
    out.push_back('\n');
    absl::StrAppend(&out, kAt);
    if (where.empty()) {
      absl::StrAppend(&out, name, " (native)");
    } else if (name == "[anon]" || name.empty()) {
      absl::StrAppend(&out, where);
    } else {
      absl::StrAppend(&out, name, " (", where, ")");
    }
  }
  return out;
}

std::string ErrorText(duk_context* ctx, duk_idx_t idx) {
  // duk_safe_to_stacktrace gives "Error: msg\n    at fn (file:line) ..." for
  // errors and the plain string for anything else thrown.
  return CleanStackTrace(Utf8FromJs(duk_safe_to_stacktrace(ctx, idx)));
}

std::string GetUtf8(duk_context* ctx, duk_idx_t idx) {
  duk_size_t len = 0;
  const char* text = duk_safe_to_lstring(ctx, idx, &len);
  return Utf8FromJs(std::string_view(text, len));
}

void PushUtf8(duk_context* ctx, std::string_view utf8) {
  if (!HasFourByteSequences(utf8)) {
    duk_push_lstring(ctx, utf8.data(), utf8.size());
    return;
  }
  const std::string js = Utf8ToJs(utf8);
  duk_push_lstring(ctx, js.data(), js.size());
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
  if (duk_is_string(ctx, -1)) {
    duk_size_t len = 0;
    const char* text = duk_get_lstring(ctx, -1, &len);
    out = Utf8FromJs(std::string_view(text, len));
  }
  duk_pop(ctx);
  return out;
}

absl::Status PushJson(duk_context* ctx, std::string_view json) {
  PushUtf8(ctx, json);
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
    std::string key = GetUtf8(ctx, -2);
    out[std::move(key)] = GetUtf8(ctx, -1);
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
