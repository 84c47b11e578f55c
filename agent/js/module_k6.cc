// The hot parts of module k6 in C++. check() runs once or more per
// iteration; written in JS it cost about 8 µs in Duktape, most of the
// per-iteration budget, so it walks its arguments here instead.
#include "absl/strings/str_cat.h"
#include "agent/js/duktape/object_access.h"
#include "agent/js/runtime.h"
#include "agent/js/values.h"

namespace barrage::agent::js {
namespace {

// Validates tags (strings, numbers, booleans) into `out`; JS ToString for
// the values, as k6 does.
absl::Status ReadTags(duk_context* ctx, duk_idx_t idx, const std::string& wrap, metrics::TagSet& out) {
  if (duk_is_undefined(ctx, idx) || duk_is_null(ctx, idx)) return absl::OkStatus();
  if (!duk_is_object(ctx, idx)) return absl::InvalidArgumentError(wrap + "tags must be an object");
  duk_enum(ctx, idx, DUK_ENUM_OWN_PROPERTIES_ONLY);
  absl::Status st;
  while (duk_next(ctx, -1, 1)) {
    if (st.ok()) {
      std::string key = GetUtf8(ctx, -2);
      if (duk_is_string(ctx, -1) || duk_is_number(ctx, -1) || duk_is_boolean(ctx, -1)) {
        out[key] = GetUtf8(ctx, -1);
      } else {
        st = absl::InvalidArgumentError(absl::StrCat(
            wrap, "invalid value for metric tag '", key,
            "': only String, Boolean and Number types are accepted as a metric tag values"));
      }
    }
    duk_pop_2(ctx);
  }
  duk_pop(ctx);
  return st;
}

}  // namespace

absl::Status ReadMetricTags(duk_context* ctx, duk_idx_t idx, const std::string& wrap, metrics::TagSet& out) {
  return ReadTags(ctx, idx, wrap, out);
}

// check(value, sets[, tags]) (spec §3.1).
duk_ret_t NativeCheck(duk_context* ctx) {
  Runtime& rt = Runtime::From(ctx);
  bool rethrow = false;   // a check function threw: its error is on the stack
  bool failed = false;    // our own error: the message is pushed as an Error
  bool all = true;
  {
    absl::Status st;
    metrics::TagSet tags;
    if (rt.in_init()) {
      st = absl::InvalidArgumentError("Using check() in the init context is not supported");
    } else if (!duk_is_object(ctx, 1) || duk_is_null(ctx, 1)) {
      st = absl::InvalidArgumentError("no checks provided to `check`");
    } else {
      st = ReadTags(ctx, 2, "metric tags: ", tags);
    }
    if (st.ok()) {
      // The checks' names, in property order. A plain object's are read
      // from its layout (object_access.h): duk_enum builds an enumerator
      // object, about 5k instructions per check() call. duk_enum for the
      // rest (a Proxy, accessors, index keys). Either way each value is
      // read when its turn comes, as k6 does (obj.Get per key).
      const duk_idx_t base = duk_get_top(ctx);
      const int pairs = PushOwnEnumerableEntries(ctx, 1);
      if (pairs < 0) duk_enum(ctx, 1, DUK_ENUM_OWN_PROPERTIES_ONLY);
      int next_pair = 0;
      auto next = [&]() -> bool {  // pushes [name value]
        if (pairs < 0) return duk_next(ctx, base, /*get_value=*/1);
        if (next_pair == pairs) return false;
        duk_dup(ctx, base + 2 * next_pair);
        duk_dup(ctx, -1);
        duk_get_prop(ctx, 1);
        ++next_pair;
        return true;
      };
      while (next()) {
        std::string name = GetUtf8(ctx, -2);
        if (name.find("::") != std::string::npos) {
          st = absl::InvalidArgumentError("group and check names may not contain '::'");
          duk_pop_2(ctx);
          break;
        }
        bool ok;
        if (duk_is_function(ctx, -1)) {
          duk_dup(ctx, 0);
          if (duk_pcall(ctx, 1) != DUK_EXEC_SUCCESS) {
            // The check counts as failed, then the exception propagates.
            if (rt.system_tag("check")) tags["check"] = name;
            rt.EmitSample("checks", 0, &tags);
            rethrow = true;
            break;  // [enum err]
          }
          ok = duk_to_boolean(ctx, -1);
        } else {
          ok = duk_to_boolean(ctx, -1);
        }
        duk_pop_2(ctx);
        if (rt.system_tag("check")) tags["check"] = name;
        rt.EmitSample("checks", ok ? 1.0 : 0.0, &tags);
        if (!ok) all = false;
      }
      if (!rethrow && st.ok()) duk_set_top(ctx, base);  // the enumerator or the pairs
    }
    if (!st.ok()) {
      const std::string message(st.message());
      duk_push_error_object(ctx, DUK_ERR_ERROR, "%s", message.c_str());
      failed = true;
    }
  }
  if (rethrow || failed) return duk_throw(ctx);
  duk_push_boolean(ctx, all);
  return 1;
}

}  // namespace barrage::agent::js
