// Runs fn(ctx) under duk_safe_call; a JS error becomes a Status carrying the
// script's stack trace. Why: Debian's Duktape is built as C and unwinds with
// longjmp, which skips the destructors of every C++ frame it crosses. So all
// that may throw into Duktape runs in here, and fn's own frame holds only
// references to objects owned outside.
#ifndef BARRAGE_AGENT_JS_SAFE_CALL_H_
#define BARRAGE_AGENT_JS_SAFE_CALL_H_

#include <duktape.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace barrage::agent::js {

// The text of the error on top of the stack: its stack trace when it has one.
std::string ErrorText(duk_context* ctx, duk_idx_t idx);
// A Duktape stack trace (UTF-8) as ErrorText shows it: only the frames of
// the user's code, without Duktape's flags.
std::string CleanStackTrace(absl::string_view trace);

// fn leaves nrets values on the stack on success (nrets: 0 or 1).
template <typename Fn>
absl::Status SafeCall(duk_context* ctx, Fn& fn, int nrets = 0) {
  auto trampoline = [](duk_context* c, void* udata) -> duk_ret_t {
    return (*static_cast<Fn*>(udata))(c);
  };
  if (duk_safe_call(ctx, trampoline, &fn, /*nargs=*/0, /*nrets=*/1) == DUK_EXEC_SUCCESS) {
    if (nrets == 0) duk_pop(ctx);
    return absl::OkStatus();
  }
  std::string trace = ErrorText(ctx, -1);
  duk_pop(ctx);
  return absl::InvalidArgumentError(trace);
}

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_SAFE_CALL_H_
