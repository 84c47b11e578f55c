#include "agent/js/transform.h"

#include "absl/strings/str_cat.h"
#include "agent/js/embedded_js.h"
#include "agent/js/safe_call.h"

namespace barrage::agent::js {
namespace {

constexpr char kTransformFn[] = R"JS(
(function (src, filename) {
  try {
    return { code: Babel.transform(src, {
      presets: ['es2015', 'es2016', 'es2017'],
      plugins: ['transform-object-rest-spread'],
      retainLines: true, compact: false, comments: false, filename: filename,
      sourceType: 'module', babelrc: false, ast: false }).code };
  } catch (e) {
    var loc = e.loc || {};
    var msg = String(e.message || e);
    // Babel writes "<filename>: <reason> (line:col)"; keep the reason only.
    if (msg.indexOf(filename + ': ') === 0) msg = msg.substring(filename.length + 2);
    msg = msg.replace(/ \(\d+:\d+\)$/, '');
    return { error: (e.name || 'Error') + ': ' + msg, line: loc.line || 0,
             column: loc.column === undefined ? 0 : loc.column, frame: e.codeFrame || '' };
  }
})
)JS";

}  // namespace

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Create(const HeapHooks* hooks) {
  duk_context* ctx = CreateHeap(hooks);
  if (ctx == nullptr) return absl::ResourceExhaustedError("cannot create the Babel heap");
  std::unique_ptr<Transformer> t(new Transformer(ctx));
  std::string_view babel = BabelSource();
  auto load = [&babel](duk_context* c) -> duk_ret_t {
    duk_eval_string_noresult(c, "var window = this, self = this;");
    duk_push_string(c, "babel.min.js");
    duk_compile_lstring_filename(c, 0, babel.data(), babel.size());
    duk_call(c, 0);
    duk_pop(c);
    duk_push_global_object(c);
    duk_push_string(c, "__barrage_transform");
    duk_eval_string(c, kTransformFn);
    duk_put_prop(c, -3);
    duk_pop(c);
    return 0;
  };
  absl::Status st = SafeCall(ctx, load);
  if (!st.ok()) return absl::InternalError(absl::StrCat("loading Babel: ", st.message()));
  return t;
}

Transformer::~Transformer() { duk_destroy_heap(ctx_); }

absl::StatusOr<std::string> Transformer::Transform(const std::string& source,
                                                   const std::string& filename) {
  std::string code, error, frame;
  int line = 0, column = 0;
  auto run = [&](duk_context* c) -> duk_ret_t {
    duk_get_global_string(c, "__barrage_transform");
    duk_push_lstring(c, source.data(), source.size());
    duk_push_lstring(c, filename.data(), filename.size());
    duk_call(c, 2);
    if (duk_get_prop_string(c, -1, "code")) {
      code.assign(duk_get_string(c, -1));
    } else {
      duk_pop(c);
      duk_get_prop_string(c, -1, "error");
      error = duk_safe_to_string(c, -1);
      duk_pop(c);
      duk_get_prop_string(c, -1, "line");
      line = duk_get_int(c, -1);
      duk_pop(c);
      duk_get_prop_string(c, -1, "column");
      column = duk_get_int(c, -1);
      duk_pop(c);
      duk_get_prop_string(c, -1, "frame");
      frame = duk_safe_to_string(c, -1);
    }
    duk_pop_2(c);
    return 0;
  };
  absl::Status st = SafeCall(ctx_, run);
  if (!st.ok()) return absl::InternalError(absl::StrCat("Babel failed on ", filename, ": ", st.message()));
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ":", line, ":", column + 1, ": ", error,
                                                   frame.empty() ? "" : "\n", frame));
  }
  return code;
}

}  // namespace barrage::agent::js
