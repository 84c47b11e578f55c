// ES2015+ to ES5 for Duktape, done as k6 did while its engine could not
// parse modules: a file Duktape compiles as it is runs as it is; only the
// others go through Babel (babel-standalone 6 running inside a Duktape heap
// of its own: presets es2015, es2016, es2017 and object rest/spread, as
// DESIGN.md measured). Babel's results are cached on disk by content, so a
// second run of the same script costs a file read.
//
// Semantics kept whichever way a file goes (tests/agent/js/transform_test.cc):
// every file runs in strict mode (Babel's module transform says "use
// strict"; k6 compiles every file strict); lines are the user's (an
// untouched file is the user's text; Babel's output comes with a LineMap
// made from its source map, which the runtime applies when it compiles the
// module: common/line_map.h); a syntax error is
// "<file>:<line>:<col>: SyntaxError: <reason>" with Babel's code frame.
// `const` is the one thing Duktape accepts with other semantics (function-
// scoped, no TDZ), so a file using it always goes through Babel.
// Babel's arrow functions come out as method definitions: not
// constructable, no `prototype`, no binding of their own name, as in
// ES2015, and so no reference cycles (transform.cc, arrowsAsMethods).
//
// Babel is loaded (about 150 ms and 40 MB) only when a file first needs it.
// Not thread-safe: one caller at a time.
#ifndef BARRAGE_AGENT_JS_TRANSFORM_H_
#define BARRAGE_AGENT_JS_TRANSFORM_H_

#include <duktape.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/js/duktape/heap.h"
#include "common/line_map.h"

namespace barrage::agent::js {

class TransformCache;

// k6's --compatibility-mode.
enum class CompatibilityMode {
  kExtended,  // ES2015+ through Babel where Duktape cannot run the file as it is
  kBase,      // no transform at all: files must be ES5 (what Duktape compiles) and CommonJS
};

struct TransformerOptions {
  // Stops a long transform (Ctrl-C): Transform then fails with kCancelled.
  // May be nullptr; must outlive the Transformer.
  const HeapHooks* hooks = nullptr;
  CompatibilityMode mode = CompatibilityMode::kExtended;
  // Where Babel's results are kept ("" keeps none); DefaultTransformCacheDir().
  std::string cache_dir;
  // A transform still running after this long is announced once through
  // `log` (then again every 15 s), naming the file: large ES2015+ files take
  // seconds to minutes, and a silent pause looks like a hang.
  absl::Duration announce_after = absl::Seconds(1);
  std::function<void(absl::string_view)> log;  // default: barrage::Log at info level
  // false: Babel as published, without the speed patches in transform.cc
  // (only to show that they change no output: tests and the benchmark).
  bool patch_babel = true;
};

// What Transform gives for a module: the code to compile, and where Babel
// wrote it, the user's line for each of its lines.
struct TransformedModule {
  std::string code;
  LineMap lines;  // empty: the code's lines are the user's
};

// $BARRAGE_CACHE_DIR, else $XDG_CACHE_HOME/barrage, else ~/.cache/barrage;
// with "/transform" appended. "" when none of them is set.
std::string DefaultTransformCacheDir();

class Transformer {
 public:
  static absl::StatusOr<std::unique_ptr<Transformer>> Create(TransformerOptions options);
  // kExtended, no cache.
  static absl::StatusOr<std::unique_ptr<Transformer>> Create(const HeapHooks* hooks = nullptr);
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  // The ES5 code to compile for `source` (a module's text as read from disk),
  // with its LineMap when Babel wrote it.
  // Errors: kInvalidArgument for a syntax error Babel reports (see above);
  // kCancelled when the hooks stopped it; kInternal if Babel itself fails.
  // In kBase mode the source comes back as it is, strict (Duktape reports
  // syntax errors when the runtime compiles it).
  absl::StatusOr<TransformedModule> Transform(const std::string& source, const std::string& filename);

  // Which way each file went, for tests and the benchmark.
  struct Counts {
    int untouched = 0;  // ES5 that Duktape compiles: no Babel
    int cached = 0;     // Babel's earlier result, from the cache
    int babel = 0;      // run through Babel now
  };
  const Counts& counts() const { return counts_; }

 private:
  class Hooks;
  explicit Transformer(TransformerOptions options);
  absl::Status LoadBabel();
  absl::StatusOr<TransformedModule> RunBabel(const std::string& source, const std::string& filename);

  TransformerOptions options_;
  std::unique_ptr<Hooks> hooks_;
  std::unique_ptr<TransformCache> cache_;
  duk_context* babel_ = nullptr;  // loaded on first use
  duk_context* probe_ = nullptr;  // a bare heap that test-compiles files
  Counts counts_;
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_TRANSFORM_H_
