#include "agent/js/transform.h"

#include <cstdlib>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "agent/js/embedded_js.h"
#include "agent/js/module_wrapper.h"
#include "agent/js/safe_call.h"
#include "agent/js/source_map.h"
#include "agent/js/transform_cache.h"
#include "agent/js/values.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace barrage::agent::js {
namespace {

// Babel's options. Changing them changes the cache key (kRecipe holds them).
// Not retainLines: it cannot move code back up, so the functions the module
// transform hoists were crammed onto one later line, and errors in them
// named that line. Babel's normal layout (a statement per line) and its
// source map give each generated line the user's line instead
// (source_map.h); the map's text costs about 5 % of Babel's time.
//
// arrowsAsMethods, a plugin of ours: Babel 6 turns an arrow function into a
// function expression, named after the variable or key it is assigned to
// (`(r) => …` in `{'status is OK': (r) => …}` becomes `function
// statusIsOK(r) {…}`). Duktape gives such a function two reference cycles
// (its name binding is an environment holding the function, and its
// `prototype.constructor` is the function), so each one a VU's iteration
// makes, with the iteration's environment hanging off it, outlives the
// iteration until the next mark-and-sweep (tests/bench/README.md, "Busy
// VUs over time"). An arrow is neither constructable nor bound to its own
// name in ES2015; a method definition is neither in Duktape either, so
// after Babel's passes (post: the es2015 preset turns method definitions
// back into functions while it runs) each function Babel made from an arrow
// ("shadow" functions: arrows, and the closures Babel makes for loops and
// classes, whose `this` and `arguments` it has already made the outer
// function's) becomes `{ NAME(params) {…} }.NAME`, or `{ ''(…) {…} }['']`
// without a name: `.name` stays Babel's name (or ''), `new` is a TypeError,
// there is no `prototype`, and the body sees the outer binding of NAME (the
// es2015 function-name transform names a function only where that binding
// is the function itself, or it renames the outer binding). A function
// whose body or parameters mention its own name stays as it is: Babel's
// own code may rely on the binding (regenerator's `_callee` passes itself).
// The object around the method is acyclic: reference counting frees it at
// once. Cost: one more walk of the tree, plus one of each named arrow's body
// (nested named arrows are few levels deep); no measurable time against
// Babel's own passes (3,000 arrows: within the noise), and a few more bytes
// of output per arrow.
constexpr char kTransformFn[] = R"JS(
(function () {
function arrowsAsMethods(babel) {
  var t = babel.types, keys = t.VISITOR_KEYS;
  // Calls visit(child, replace) for each node directly under `node`;
  // replace(x) puts x in the child's place.
  function eachChild(node, visit) {
    var fields = keys[node.type];
    if (!fields) return;
    fields.forEach(function (field) {
      var child = node[field];
      if (Array.isArray(child)) {
        child.forEach(function (c, j) {
          if (c !== null && typeof c === 'object') visit(c, function (x) { child[j] = x; });
        });
      } else if (child !== null && typeof child === 'object') {
        visit(child, function (x) { node[field] = x; });
      }
    });
  }
  // Whether an identifier spelled `name` occurs under `root` (property names
  // and inner bindings count too: a false yes only keeps a function as is).
  function mentions(root, name) {
    var stack = [root], found = false;
    while (stack.length > 0 && !found) {
      var node = stack.pop();
      if (node.type === 'Identifier' && node.name === name) found = true;
      eachChild(node, function (child) { stack.push(child); });
    }
    return found;
  }
  function convertible(node) {
    if (node === null || typeof node !== 'object' || node.type !== 'FunctionExpression' || !node.shadow ||
        node.generator || node.async) {
      return false;
    }
    if (!node.id) return true;
    for (var i = 0; i < node.params.length; i++) if (mentions(node.params[i], node.id.name)) return false;
    return !mentions(node.body, node.id.name);
  }
  function asMethod(fn) {
    var named = !!fn.id, name = named ? fn.id.name : '';
    var method = t.objectMethod('method', named ? t.identifier(name) : t.stringLiteral(''), fn.params, fn.body);
    var object = t.objectExpression([method]);
    var out = t.memberExpression(object, named ? t.identifier(name) : t.stringLiteral(''), !named);
    // The user's position, for the source map (and so for stack lines).
    out.loc = object.loc = method.loc = method.key.loc = fn.loc;
    out.start = object.start = method.start = fn.start;
    out.end = object.end = method.end = fn.end;
    return out;
  }
  return {
    visitor: {},
    post: function (file) {
      var stack = [file.ast.program];
      while (stack.length > 0) {
        eachChild(stack.pop(), function (child, replace) {
          if (convertible(child)) replace(child = asMethod(child));
          stack.push(child);
        });
      }
    }
  };
}
return function (src, filename) {
  try {
    var out = Babel.transform(src, {
      presets: ['es2015', 'es2016', 'es2017'],
      plugins: ['transform-object-rest-spread', arrowsAsMethods],
      sourceMaps: true, compact: false, comments: false, filename: filename,
      sourceType: 'module', babelrc: false, ast: false });
    return { code: out.code, mappings: out.map.mappings };
  } catch (e) {
    var loc = e.loc || {};
    var msg = String(e.message || e);
    // Babel writes "<filename>: <reason> (line:col)"; keep the reason only.
    if (msg.indexOf(filename + ': ') === 0) msg = msg.substring(filename.length + 2);
    msg = msg.replace(/ \(\d+:\d+\)$/, '');
    return { error: (e.name || 'Error') + ': ' + msg, line: loc.line || 0,
             column: loc.column === undefined ? 0 : loc.column, frame: e.codeFrame || '' };
  }
};
})()
)JS";

// Where babel-standalone 6.26.0 (pinned in scripts/js/package-lock.json)
// does super-linear work, and the same computation without it. Each `from`
// must occur exactly once in the embedded babel.min.js, or loading fails:
// a new Babel needs these looked at again. The output is byte-for-byte the
// same (tests/bench/transform_bench checks it on every input); the figures
// are in tests/bench/README.md.
struct BabelPatch {
  const char* why;
  const char* from;
  const char* to;
};
constexpr BabelPatch kBabelPatches[] = {
    {// The block-scoping plugin asked for the NodePaths of a block's whole
     // body once per statement of that body: cubic in the statements of one
     // block (a bundle's factory function has thousands): 1,000 functions
     // in one body took 69 s. Asked once, before the loop.
     "block scoping: body paths once per block",
     R"(if(t.body)for(var o=0;o<t.body.length;o++){var u=this.blockPath.get("body")[o];i(u)}if(t.cases)for(var l=0;l<t.cases.length;l++)for(var c=t.cases[l].consequent,f=0;f<c.length;f++){var p=this.blockPath.get("cases")[l],d=c[f];i(p,d)})",
     R"(if(t.body)for(var __bb=this.blockPath.get("body"),o=0;o<t.body.length;o++){var u=__bb[o];i(u)}if(t.cases)for(var __bc=this.blockPath.get("cases"),l=0;l<t.cases.length;l++)for(var c=t.cases[l].consequent,f=0;f<c.length;f++){var p=__bc[l],d=c[f];i(p,d)})"},
    {// NodePath.get found a node's path by scanning every path made under
     // the same parent: quadratic in a block's statements (Babel 7 keys
     // the cache by node). Each node now remembers its path (a hidden
     // property) and the scan runs only when that memory is stale.
     "NodePath.get: a node remembers its path",
     R"(var u=s[o],l=S.path.get(i)||[];S.path.has(i)||S.path.set(i,l);for(var c=void 0,f=0;f<l.length;f++){var p=l[f];if(p.node===u){c=p;break}}return c||(c=new e(r,i),l.push(c)),c.setup(n,s,a,o),c})",
     R"(var u=s[o],l=S.path.get(i)||[];S.path.has(i)||S.path.set(i,l);var c=u!==null&&typeof u==="object"?u.__barrage_path:void 0;if(c===void 0||c.node!==u||c.__barrage_list!==l){c=void 0;for(var f=0;f<l.length;f++){var p=l[f];if(p.node===u){c=p;break}}c||(c=new e(r,i),l.push(c),Object.defineProperty(c,"__barrage_list",{value:l}));u!==null&&typeof u==="object"&&Object.defineProperty(u,"__barrage_path",{value:c,writable:!0,configurable:!0})}return c.setup(n,s,a,o),c})"},
    {// t.isType(nodeType, alias) walked the alias's member list on every
     // call (a tenth of the time on ES2015+ code). The answer never changes
     // once Babel is loaded, so it is remembered from then on.
     "isType: answers remembered",
     R"(function a(e,t){if(e===t)return!0;if(z.ALIAS_KEYS[t])return!1;var r=z.FLIPPED_ALIAS_KEYS[t];if(r){if(r[0]===e)return!0;for(var n=r,i=Array.isArray(n),s=0,n=i?n:(0,T.default)(n);;){var a;if(i){if(s>=n.length)break;a=n[s++]}else{if(s=n.next(),s.done)break;a=s.value}if(e===a)return!0}}return!1})",
     R"(function a(e,t){if(e===t)return!0;var m=__barrage_isTypeMemo;if(m===null)return __barrage_isTypeSlow(e,t);var k=m[t];if(k===void 0)k=m[t]=Object.create(null);var v=k[e];if(v===void 0)v=k[e]=__barrage_isTypeSlow(e,t);return v}function __barrage_isTypeSlow(e,t){if(z.ALIAS_KEYS[t])return!1;var r=z.FLIPPED_ALIAS_KEYS[t];if(r){if(r[0]===e)return!0;for(var n=r,i=Array.isArray(n),s=0,n=i?n:(0,T.default)(n);;){var a;if(i){if(s>=n.length)break;a=n[s++]}else{if(s=n.next(),s.done)break;a=s.value}if(e===a)return!0}}return!1})"},
};

// What decides Babel's output besides the source: the embedded Babel with
// our patches, and the options; the layout of a cache entry (2: the line
// map, then the code) and the rule that made the line map. Part of every
// cache key.
const std::string& Recipe() {
  static const std::string* recipe = [] {
    std::string patches;
    for (const BabelPatch& p : kBabelPatches) absl::StrAppend(&patches, p.to, "\n");
    std::string_view babel = BabelSource();
    return new std::string(
        Sha256Hex({"barrage transform 2", absl::string_view(babel.data(), babel.size()), patches, kTransformFn,
                   kLineMapRule}));
  }();
  return *recipe;
}

absl::StatusOr<std::string> PatchedBabel(bool patch) {
  std::string babel(BabelSource());
  for (const BabelPatch& p : kBabelPatches) {
    if (!patch) break;
    size_t at = babel.find(p.from);
    if (at == std::string::npos || babel.find(p.from, at + 1) != std::string::npos) {
      return absl::InternalError(absl::StrCat("the embedded babel-standalone is not the pinned 6.26.0: patch '",
                                              p.why, "' does not apply"));
    }
    babel.replace(at, strlen(p.from), p.to);
  }
  return babel;
}

// A file that needs no transform runs as it is, but strict, as Babel's
// output and every file in k6 do. On the first line: lines stay the user's.
constexpr absl::string_view kStrictPrefix = "\"use strict\";";

bool IsIdentifierByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

// `source` with each word "const" made unparseable ("@onst"), or nullopt
// when the word does not occur. A non-ASCII neighbour counts as a word
// boundary: masking too much only sends a file to Babel.
std::optional<std::string> MaskConst(const std::string& source) {
  std::optional<std::string> masked;
  for (size_t at = source.find("const"); at != std::string::npos; at = source.find("const", at + 5)) {
    if (at > 0 && IsIdentifierByte(source[at - 1])) continue;
    if (at + 5 < source.size() && IsIdentifierByte(source[at + 5])) continue;
    if (!masked) masked = source;
    (*masked)[at] = '@';
  }
  return masked;
}

}  // namespace

std::string DefaultTransformCacheDir() {
  auto env = [](const char* name) -> std::string {
    const char* v = getenv(name);
    return v != nullptr ? v : "";
  };
  std::string base = env("BARRAGE_CACHE_DIR");
  if (base.empty() && !env("XDG_CACHE_HOME").empty()) base = env("XDG_CACHE_HOME") + "/barrage";
  if (base.empty() && !env("HOME").empty()) base = env("HOME") + "/.cache/barrage";
  return base.empty() ? "" : base + "/transform";
}

// The Babel heap's interrupt check (every 256 k bytecode instructions, a
// few ms): passes on the owner's stop, and announces a long transform.
class Transformer::Hooks : public HeapHooks {
 public:
  explicit Hooks(const TransformerOptions& options) : options_(options) {}

  void Begin(const std::string& filename, size_t bytes) {
    file_ = &filename;
    bytes_ = bytes;
    start_ = absl::Now();
    next_announce_ = start_ + options_.announce_after;
    interrupted_ = false;
  }
  void End() { file_ = nullptr; }
  bool interrupted() const { return interrupted_; }

  bool ShouldInterrupt() const override {
    if (options_.hooks != nullptr && options_.hooks->ShouldInterrupt()) {
      interrupted_ = true;
      return true;
    }
    if (file_ != nullptr) {
      absl::Time now = absl::Now();
      if (now >= next_announce_) Announce(now);
    }
    return false;
  }

 private:
  void Announce(absl::Time now) const {
    std::string text =
        announced_for_ == file_
            ? absl::StrFormat("still transforming %s: %.0f s so far", *file_, absl::ToDoubleSeconds(now - start_))
            : absl::StrFormat(
                  "transforming %s (%d KB) from ES2015+ to ES5 with Babel; large files take a while%s", *file_,
                  (bytes_ + 1023) / 1024,
                  options_.cache_dir.empty() ? "" : ", and the result is cached for the next run");
    announced_for_ = file_;
    next_announce_ = now + absl::Seconds(15);
    if (options_.log) {
      options_.log(text);
    } else {
      Log(Severity::kInfo, text);
    }
  }

  const TransformerOptions& options_;
  const std::string* file_ = nullptr;
  size_t bytes_ = 0;
  absl::Time start_;
  mutable absl::Time next_announce_;
  mutable const std::string* announced_for_ = nullptr;
  mutable bool interrupted_ = false;
};

Transformer::Transformer(TransformerOptions options)
    : options_(std::move(options)), hooks_(std::make_unique<Hooks>(options_)) {
  if (!options_.cache_dir.empty()) cache_ = std::make_unique<TransformCache>(options_.cache_dir);
}

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Create(TransformerOptions options) {
  std::unique_ptr<Transformer> t(new Transformer(std::move(options)));
  t->probe_ = CreateHeap(nullptr);
  if (t->probe_ == nullptr) return absl::ResourceExhaustedError("cannot create a JS heap");
  return t;
}

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Create(const HeapHooks* hooks) {
  TransformerOptions options;
  options.hooks = hooks;
  return Create(std::move(options));
}

Transformer::~Transformer() {
  if (babel_ != nullptr) duk_destroy_heap(babel_);
  if (probe_ != nullptr) duk_destroy_heap(probe_);
}

absl::Status Transformer::LoadBabel() {
  absl::StatusOr<std::string> babel = PatchedBabel(options_.patch_babel);
  if (!babel.ok()) return babel.status();
  babel_ = CreateHeap(hooks_.get());
  if (babel_ == nullptr) return absl::ResourceExhaustedError("cannot create the Babel heap");
  auto load = [&babel](duk_context* c) -> duk_ret_t {
    duk_eval_string_noresult(c, "var window = this, self = this, __barrage_isTypeMemo = null;");
    duk_push_string(c, "babel.min.js");
    duk_compile_lstring_filename(c, 0, babel->data(), babel->size());
    duk_call(c, 0);
    duk_pop(c);
    // From here on the node types are all defined: isType may remember.
    duk_eval_string_noresult(c, "__barrage_isTypeMemo = Object.create(null);");
    duk_push_global_object(c);
    duk_push_string(c, "__barrage_transform");
    duk_eval_string(c, kTransformFn);
    duk_put_prop(c, -3);
    duk_pop(c);
    return 0;
  };
  absl::Status st = SafeCall(babel_, load);
  if (!st.ok()) {
    duk_destroy_heap(babel_);
    babel_ = nullptr;
    if (hooks_->interrupted()) return absl::CancelledError("interrupted while loading Babel");
    return absl::InternalError(absl::StrCat("loading Babel: ", st.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TransformedModule> Transformer::Transform(const std::string& source, const std::string& filename) {
  if (options_.mode == CompatibilityMode::kBase) {
    ++counts_.untouched;
    return TransformedModule{absl::StrCat(kStrictPrefix, source), {}};  // k6 compiles base-mode files strict too
  }
  // k6's way: compile first, transform only what does not compile. The
  // test compile is the runtime's own (same wrapper, same Duktape), and
  // costs about 0.1 s per MB.
  std::string as_is = absl::StrCat(kStrictPrefix, source);
  auto compiles = [this](const std::string& code) {
    std::string wrapped = absl::StrCat(kModuleWrapperHead, code, kModuleWrapperTail);
    bool ok = duk_pcompile_lstring(probe_, DUK_COMPILE_FUNCTION, wrapped.data(), wrapped.size()) == 0;
    duk_pop(probe_);
    return ok;
  };
  if (compiles(as_is)) {
    std::optional<std::string> masked = MaskConst(as_is);
    if (!masked || compiles(*masked)) {
      ++counts_.untouched;
      return TransformedModule{std::move(as_is), {}};
    }
  }

  std::string key;
  if (cache_ != nullptr) {
    key = Sha256Hex({Recipe(), options_.patch_babel ? "" : "unpatched", source});
    if (std::optional<std::string> hit = cache_->Get(key)) {
      // The entry is the line map's text, a newline, the code (the cache
      // checks the whole entry's hash; a map that does not decode is a miss).
      const size_t newline = hit->find('\n');
      if (newline != std::string::npos) {
        absl::StatusOr<LineMap> lines = LineMap::Decode(absl::string_view(*hit).substr(0, newline));
        if (lines.ok()) {
          ++counts_.cached;
          return TransformedModule{hit->substr(newline + 1), *std::move(lines)};
        }
      }
    }
  }
  absl::StatusOr<TransformedModule> out = RunBabel(source, filename);
  if (!out.ok()) return out;
  ++counts_.babel;
  if (cache_ != nullptr) {
    absl::Status st = cache_->Put(key, absl::StrCat(out->lines.Encode(), "\n", out->code));
    if (!st.ok()) Log(Severity::kDebug, absl::StrCat("transform cache: ", st.message()));
  }
  return out;
}

absl::StatusOr<TransformedModule> Transformer::RunBabel(const std::string& source, const std::string& filename) {
  hooks_->Begin(filename, source.size());
  struct EndOnExit {
    Hooks* hooks;
    ~EndOnExit() { hooks->End(); }
  } end_on_exit{hooks_.get()};
  if (babel_ == nullptr) BARRAGE_RETURN_IF_ERROR(LoadBabel());
  std::string code, mappings, error, frame;
  int line = 0, column = 0;
  auto run = [&](duk_context* c) -> duk_ret_t {
    duk_get_global_string(c, "__barrage_transform");
    duk_push_lstring(c, source.data(), source.size());
    PushUtf8(c, filename);  // a path in UTF-8; Babel sees it as JS does
    duk_call(c, 2);
    if (duk_get_prop_string(c, -1, "code")) {
      duk_size_t n = 0;
      const char* s = duk_get_lstring(c, -1, &n);
      code.assign(s, n);
      duk_pop(c);
      duk_get_prop_string(c, -1, "mappings");
      mappings = duk_safe_to_string(c, -1);
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
  absl::Status st = SafeCall(babel_, run);
  // Babel's garbage is cyclic (paths, scopes, nodes), which Duktape frees
  // only in its occasional full collections: free it now, not in the middle
  // of the next file.
  duk_gc(babel_, 0);
  if (hooks_->interrupted()) return absl::CancelledError(absl::StrCat(filename, ": transform interrupted"));
  if (!st.ok()) return absl::InternalError(absl::StrCat("Babel failed on ", filename, ": ", st.message()));
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ":", line, ":", column + 1, ": ", error,
                                                   frame.empty() ? "" : "\n", frame));
  }
  absl::StatusOr<LineMap> lines = LineMapFromSourceMap(mappings);
  if (!lines.ok()) return absl::InternalError(absl::StrCat("Babel's source map of ", filename, ": ", lines.status().message()));
  return TransformedModule{std::move(code), *std::move(lines)};
}

}  // namespace barrage::agent::js
