// Small bridges between Duktape values and C++ used by every module.
#ifndef BARRAGE_AGENT_JS_VALUES_H_
#define BARRAGE_AGENT_JS_VALUES_H_

#include <duktape.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "common/metrics/metric.h"

namespace barrage::agent::js {

class Runtime;

// A native function whose body may fail: Impl returns the number of values
// it pushed (0 or 1) or an error, which becomes a thrown JS Error (a
// TypeError when the message starts with "TypeError: "). The throw happens
// after Impl's C++ locals are destroyed: Duktape unwinds with longjmp.
using NativeImpl = absl::StatusOr<int> (*)(duk_context* ctx, Runtime& rt);
template <NativeImpl Impl>
duk_ret_t Native(duk_context* ctx);

// JSON.stringify of the value at idx under a protected call: a cycle or a
// throwing toJSON becomes an error, never a longjmp through the caller.
// Undefined gives "".
absl::StatusOr<std::string> SafeJsonEncode(duk_context* ctx, duk_idx_t idx);
// Decodes JSON we produced (valid by construction) and pushes the value.
absl::Status PushJson(duk_context* ctx, std::string_view json);
// An object of string values (already validated by the prelude) to a TagSet;
// undefined or null gives an empty set.
metrics::TagSet ReadStringMap(duk_context* ctx, duk_idx_t idx);
// The value at idx as a string (JS ToString, never throwing), in UTF-8
// (agent/js/cesu8.h): for anything that leaves the heap with user text.
std::string GetUtf8(duk_context* ctx, duk_idx_t idx);
// Pushes UTF-8 text from outside the heap as a JS string (surrogate pairs).
void PushUtf8(duk_context* ctx, std::string_view utf8);
// Bytes of a value that k6 takes as "string or ArrayBuffer" (its
// common.ToBytes): a string as UTF-8, or the bytes of an ArrayBuffer or of a
// view on one (a Uint8Array; any typed array or DataView is taken as its
// bytes). Anything else is `invalid type <Go type>, expected string, []byte
// or ArrayBuffer`, with the Go type k6 would name (int64, bool, <nil>, ...).
absl::StatusOr<std::string> BytesOf(duk_context* ctx, duk_idx_t idx);
// Pushes a new ArrayBuffer holding bytes.
void PushArrayBuffer(duk_context* ctx, std::string_view bytes);
// Pushes bytes as a JS string as Go's string -> JS conversion does (k6's
// b64decode(..., 's')): UTF-8 decoded, each invalid byte as U+FFFD, a
// character outside the BMP as a surrogate pair.
void PushUtf8Lossy(duk_context* ctx, std::string_view bytes);
// A JS number as an int64, as goja's ToInteger (what k6 hands a Go int64
// parameter): NaN is 0, the fraction is dropped, numbers beyond int64's
// range saturate. A plain static_cast is undefined behaviour for those, and
// they come straight from scripts (UBSan's float-cast-overflow).
inline int64_t JsNumberToInt64(double d) {
  if (std::isnan(d)) return 0;
  if (d >= 9223372036854775808.0) return INT64_MAX;  // 2^63
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(d);
}
// Adds name: fn(nargs) to the object at obj_idx.
void PutFunction(duk_context* ctx, duk_idx_t obj_idx, const char* name, duk_c_function fn,
                 duk_idx_t nargs);
// The same as a lightweight function: no object in the heap, only the
// property's slot (an object per native adds up over thousands of heaps).
// Its .name reads "light_<address>_<flags>", so only for natives scripts
// never see (those on __b and its module objects). nargs <= 14.
void PutHiddenFunction(duk_context* ctx, duk_idx_t obj_idx, const char* name, duk_c_function fn,
                       duk_idx_t nargs, duk_int_t magic = 0);

// ---- implementation of the template --------------------------------------
Runtime& RuntimeFrom(duk_context* ctx);
template <NativeImpl Impl>
duk_ret_t Native(duk_context* ctx) {
  bool failed = false;
  int nret = 0;
  {
    absl::StatusOr<int> r = Impl(ctx, RuntimeFrom(ctx));
    if (r.ok()) {
      nret = *r;
    } else {
      failed = true;
      const std::string message(r.status().message());
      if (absl::StartsWith(message, "TypeError: ")) {
        duk_push_error_object(ctx, DUK_ERR_TYPE_ERROR, "%s", message.c_str() + 11);
      } else {
        duk_push_error_object(ctx, DUK_ERR_ERROR, "%s", message.c_str());
      }
    }
  }
  if (failed) return duk_throw(ctx);
  return nret;
}

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_VALUES_H_

namespace barrage::agent::js {
// Pushes our own embedded script (the prelude, a module's JS half) as a
// compiled function. Each source is compiled once per process, in a scratch
// heap, and every VU loads the bytecode: compiling the prelude in each of
// 10,000 heaps would dominate VU start-up. The source must be a program
// (flags 0) or, with DUK_COMPILE_FUNCTION, a function expression.
void PushEmbeddedScript(duk_context* ctx, const char* name, std::string_view source, duk_uint_t flags);
// Runs an embedded program that evaluates to an installer function and
// calls it with the object on top of the stack (__b), as the modules' JS
// halves do. The stack is left as it was.
void RunEmbeddedInstaller(duk_context* ctx, const char* name, std::string_view source);
}  // namespace barrage::agent::js
