// ES2015+ to ES5, with babel-standalone 6 running inside a Duktape heap of
// its own (presets es2015, es2016, es2017 and object rest/spread, as
// DESIGN.md measured). Loading Babel costs about 250 ms, so one Transformer
// is made per process and reused for every file. retainLines keeps each
// statement on its source line, so runtime errors point at the user's line.
// Not thread-safe: one caller at a time.
#ifndef BARRAGE_AGENT_JS_TRANSFORM_H_
#define BARRAGE_AGENT_JS_TRANSFORM_H_

#include <duktape.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/js/duktape/heap.h"

namespace barrage::agent::js {

class Transformer {
 public:
  // hooks (may be nullptr; must outlive the Transformer) can stop a long
  // transform, e.g. on Ctrl-C.
  static absl::StatusOr<std::unique_ptr<Transformer>> Create(const HeapHooks* hooks = nullptr);
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  // A syntax error is kInvalidArgument "<filename>:<line>:<col>: SyntaxError:
  // <reason>" followed by Babel's code frame.
  absl::StatusOr<std::string> Transform(const std::string& source, const std::string& filename);

 private:
  explicit Transformer(duk_context* ctx) : ctx_(ctx) {}
  duk_context* ctx_;
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_TRANSFORM_H_
