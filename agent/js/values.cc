#include "agent/js/values.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

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

namespace {

void AppendCodepoint(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one (extended) UTF-8 sequence at s[i]: its codepoint and length,
// or length 1 and -1 when the bytes are no valid sequence. Surrogate
// codepoints (ED A0..BF xx) decode as themselves: Duktape stores them so.
std::pair<int64_t, size_t> DecodeOne(std::string_view s, size_t i, bool allow_surrogates) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1};
  size_t len = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {-1, 1};
  }
  if (i + len > s.size()) return {-1, 1};
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return {-1, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF) return {-1, 1};
  if (!allow_surrogates && cp >= 0xD800 && cp < 0xE000) return {-1, 1};
  return {cp, len};
}

// Go's type name for what k6's ToBytes refuses.
std::string GoTypeName(duk_context* ctx, duk_idx_t idx) {
  if (duk_is_null_or_undefined(ctx, idx)) return "<nil>";
  if (duk_is_boolean(ctx, idx)) return "bool";
  if (duk_is_number(ctx, idx)) {
    const double v = duk_get_number(ctx, idx);
    // goja exports an integral number within int64's range as int64 (the
    // range check first: casting NaN or 1e300 is undefined behaviour).
    const bool int64 = v >= -9223372036854775808.0 && v < 9223372036854775808.0 && std::trunc(v) == v;
    return int64 ? "int64" : "float64";
  }
  if (duk_is_array(ctx, idx)) return "[]interface {}";
  if (duk_is_function(ctx, idx)) return "func(sobek.FunctionCall) sobek.Value";
  return "map[string]interface {}";
}

}  // namespace

void PushUtf8Lossy(duk_context* ctx, std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto [cp, len] = DecodeOne(s, i, /*allow_surrogates=*/false);
    i += len;
    if (cp < 0) cp = 0xFFFD;
    if (cp >= 0x10000) {
      AppendCodepoint(static_cast<uint32_t>(0xD800 + ((cp - 0x10000) >> 10)), out);
      AppendCodepoint(static_cast<uint32_t>(0xDC00 + ((cp - 0x10000) & 0x3FF)), out);
    } else {
      AppendCodepoint(static_cast<uint32_t>(cp), out);
    }
  }
  duk_push_lstring(ctx, out.data(), out.size());
}

absl::StatusOr<std::string> BytesOf(duk_context* ctx, duk_idx_t idx) {
  if (duk_is_string(ctx, idx)) {
    duk_size_t len = 0;
    const char* p = duk_get_lstring(ctx, idx, &len);
    return Utf8FromJs(std::string_view(p, len));
  }
  if (duk_is_buffer_data(ctx, idx)) {
    duk_size_t len = 0;
    const void* p = duk_get_buffer_data(ctx, idx, &len);
    return std::string(static_cast<const char*>(p), len);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid type ", GoTypeName(ctx, idx), ", expected string, []byte or ArrayBuffer"));
}

void PushArrayBuffer(duk_context* ctx, std::string_view bytes) {
  void* buf = duk_push_fixed_buffer(ctx, bytes.size());
  if (!bytes.empty()) memcpy(buf, bytes.data(), bytes.size());
  duk_push_buffer_object(ctx, -1, 0, bytes.size(), DUK_BUFOBJ_ARRAYBUFFER);
  duk_remove(ctx, -2);
}

void PutFunction(duk_context* ctx, duk_idx_t obj_idx, const char* name, duk_c_function fn,
                 duk_idx_t nargs) {
  obj_idx = duk_normalize_index(ctx, obj_idx);
  duk_push_c_function(ctx, fn, nargs);
  duk_put_prop_string(ctx, obj_idx, name);
}

void PutHiddenFunction(duk_context* ctx, duk_idx_t obj_idx, const char* name, duk_c_function fn,
                       duk_idx_t nargs, duk_int_t magic) {
  obj_idx = duk_normalize_index(ctx, obj_idx);
  duk_push_c_lightfunc(ctx, fn, nargs, nargs == DUK_VARARGS ? 0 : nargs, magic);
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
