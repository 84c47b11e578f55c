// How long a script takes to be ready to run: the ES2015+ -> ES5 transform
// (agent/js/transform.h) plus Duktape's compile of the result, cold (empty
// cache, Babel not loaded) and warm (the same file again, from the cache).
// Inputs: real bundled libraries (ES5 UMD builds from npm, pinned in
// scripts/js/package-lock.json), an ES5 bundle of a given size made of them
// (webpack's layout: one function per module in an array), and generated
// ES2015+ code of given sizes (classes, arrows, destructuring, template
// literals, spread, non-ASCII and emoji in strings) in two shapes: an ES
// module (top-level statements) and a UMD build (everything in one function
// body, as bundlers write it). Prints one table; exits 1 when a transform
// fails, a library does not take the path it should, or (with
// --compare-unpatched-kb) patched and published Babel disagree.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "agent/js/bytecode_lines.h"
#include "agent/js/duktape/heap.h"
#include "agent/js/module_wrapper.h"
#include "agent/js/transform.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace {

using barrage::agent::js::TransformedModule;
using barrage::agent::js::Transformer;
using barrage::agent::js::TransformerOptions;

struct Input {
  std::string name;
  std::string kind;  // es5 / es2015
  std::string source;
  size_t kb = 0;  // the size asked for (generated inputs)
};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One ~1 KB chunk of ES2015+ code. `exported`: an ES module's top level.
std::string Chunk(int i, bool exported) {
  const std::string n = std::to_string(i);
  const std::string ex = exported ? "export " : "";
  std::string s;
  s += ex + "class Widget" + n + " extends Base {\n";
  s += "  constructor(name = 'wïdget " + n + " 😀', { size, color = 'rot' } = {}) {\n";
  s += "    super(name);\n    this.size = size;\n    this.items = [...(this.items || []), size, color];\n  }\n";
  s += "  get label() { return `${this.name}: ${this.size} — größe ✓ 🚀`; }\n";
  s += "  static make(...args) { return new Widget" + n + "(...args); }\n";
  s += "  total() { let sum = 0; for (const x of this.items) { sum += x * 2; } return sum; }\n}\n";
  s += ex + "const helper" + n + " = (a, b = [1, 2, 3]) => {\n";
  s += "  const { x, y, ...rest } = a;\n  let [first, , third = 3] = b;\n";
  s += "  return { ...rest, sum: x + y + first + third, text: `n=${x} ü ${'ß'.repeat(2)}` };\n};\n";
  s += ex + "function plain" + n + "(list, factor = " + n + ") {\n";
  s += "  return list.map((v) => v * factor).filter((v) => v % 3 === 0).reduce((s, v) => s + v, 0) ** 2;\n}\n";
  if (i % 10 == 0) s += ex + "async function load" + n + "(url) { const r = await fetch(url); return r.json(); }\n";
  return s;
}

std::string Es2015Module(size_t bytes) {
  std::string s = "import { check } from 'k6';\nclass Base { constructor(name) { this.name = name; } }\n";
  for (int i = 0; s.size() < bytes; ++i) s += Chunk(i, true);
  return s;
}

std::string Es2015Umd(size_t bytes) {
  std::string s =
      "(function (global, factory) {\n"
      "  typeof exports === 'object' && typeof module !== 'undefined' ? factory(exports) :\n"
      "  (global = global || self, factory(global.lib = {}));\n"
      "}(this, (function (exports) { 'use strict';\n"
      "class Base { constructor(name) { this.name = name; } }\n";
  int i = 0;
  for (; s.size() < bytes; ++i) s += Chunk(i, false);
  for (int j = 0; j < i; j += 50) s += "exports.helper" + std::to_string(j) + " = helper" + std::to_string(j) + ";\n";
  return s + "})));\n";
}

// What a bundler's factory function holds: thousands of small statements
// in one body (d3's UMD build has about 3,000), where Babel 6 was cubic.
std::string Es2015OneBody(size_t bytes) {
  std::string s = "(function (exports) { 'use strict';\n";
  for (int i = 0; s.size() < bytes; ++i) {
    const std::string n = std::to_string(i);
    s += i % 2 ? "  const f" + n + " = (a, b = " + n + ") => `${a} × ${b} 😀`;\n"
               : "  function g" + n + "(list) { return list.map((x) => x * " + n + "); }\n";
  }
  return s + "  exports.f1 = f1;\n})(typeof exports === 'object' ? exports : {});\n";
}

// webpack's layout: the libraries, each wrapped as a module function, repeated.
std::string Es5Bundle(const std::vector<Input>& libs, size_t bytes) {
  std::string s = "(function (modules) { var cache = {}; function req(i) { if (cache[i]) return cache[i].exports;\n"
                  "  var m = cache[i] = { exports: {} }; modules[i].call(m.exports, m, m.exports, req); return m.exports; }\n"
                  "  return req(0); })([\n";
  for (int i = 0; s.size() < bytes; ++i) {
    s += "/* " + std::to_string(i) + " */ function (module, exports, __webpack_require__) {\n";
    s += libs[i % libs.size()].source;
    s += "\n},\n";
  }
  return s + "]);\n";
}

// Duktape's compile of the transformed code, as the runtime does it.
// Duktape's compile of the result, and for Babel's output the rewrite of
// its line numbers (dump, RemapBytecodeLines, load), as the runtime does
// once per module.
double CompileSeconds(const TransformedModule& module, bool* ok) {
  duk_context* ctx = barrage::agent::js::CreateHeap(nullptr);
  std::string wrapped =
      absl::StrCat(barrage::agent::js::kModuleWrapperHead, module.code, barrage::agent::js::kModuleWrapperTail);
  double t0 = WallSeconds();
  *ok = duk_pcompile_lstring(ctx, DUK_COMPILE_FUNCTION, wrapped.data(), wrapped.size()) == 0;
  if (*ok && !module.lines.empty()) {
    duk_dump_function(ctx);
    duk_size_t size = 0;
    const char* data = static_cast<const char*>(duk_get_buffer(ctx, -1, &size));
    absl::StatusOr<std::string> remapped =
        barrage::agent::js::RemapBytecodeLines(absl::string_view(data, size), module.lines);
    *ok = remapped.ok();
    if (*ok) {
      void* buf = duk_push_fixed_buffer(ctx, remapped->size());
      memcpy(buf, remapped->data(), remapped->size());
      duk_load_function(ctx);
    }
  }
  double t = WallSeconds() - t0;
  duk_destroy_heap(ctx);
  return t;
}

const char* PathOf(const Transformer::Counts& c) {
  return c.untouched > 0 ? "as is" : c.cached > 0 ? "cache" : c.babel > 0 ? "babel" : "?";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time to make scripts ready to run: transform + compile, cold and from the cache."};
  std::vector<std::string> libs;
  std::string es2015_kb = "10,30,100";
  size_t bundle_kb = 1024;
  size_t compare_kb = 0;
  std::string cache_dir, write_inputs;
  app.add_option("--write-inputs", write_inputs, "also write each input into this directory (to time other tools on them)");
  app.add_option("--lib", libs, "an ES5 library file (repeatable); default: lodash.js and moment-with-locales.js "
                                "from scripts/js/node_modules");
  app.add_option("--es2015-kb", es2015_kb, "sizes of the generated ES2015+ inputs, KB, comma-separated (\"\" for none)");
  app.add_option("--bundle-kb", bundle_kb, "size of the ES5 bundle made of the libraries, KB (0 for none)");
  app.add_option("--compare-unpatched-kb", compare_kb,
                 "also run published (unpatched) Babel on generated inputs up to this size and check the outputs agree");
  app.add_option("--cache-dir", cache_dir, "the transform cache to use (default: a fresh temporary directory)");
  CLI11_PARSE(app, argc, argv);

  if (libs.empty()) {
    for (const char* p : {"scripts/js/node_modules/lodash/lodash.js",
                          "scripts/js/node_modules/moment/min/moment-with-locales.js"}) {
      if (std::filesystem::exists(p)) libs.emplace_back(p);
    }
  }
  std::vector<Input> inputs, lib_inputs;
  for (const std::string& p : libs) {
    std::string src = ReadFile(p);
    if (src.empty()) {
      fprintf(stderr, "transform_bench: cannot read %s\n", p.c_str());
      return 1;
    }
    lib_inputs.push_back({std::filesystem::path(p).filename().string(), "es5", src});
  }
  inputs = lib_inputs;
  if (bundle_kb > 0 && !lib_inputs.empty()) {
    std::string bundle = Es5Bundle(lib_inputs, bundle_kb * 1024);
    inputs.push_back({absl::StrCat("es5 bundle ", bundle.size() / 1024, " KB"), "es5", std::move(bundle)});
  }
  for (absl::string_view kb : absl::StrSplit(es2015_kb, ',', absl::SkipEmpty())) {
    size_t n = std::stoul(std::string(kb));
    inputs.push_back({absl::StrCat("es2015 module ", n, " KB"), "es2015", Es2015Module(n * 1024), n});
    inputs.push_back({absl::StrCat("es2015 umd ", n, " KB"), "es2015", Es2015Umd(n * 1024), n});
    inputs.push_back({absl::StrCat("es2015 one body ", n, " KB"), "es2015", Es2015OneBody(n * 1024), n});
  }

  if (!write_inputs.empty()) {
    std::filesystem::create_directories(write_inputs);
    for (const Input& in : inputs) {
      std::string name = in.name;
      for (char& c : name) if (c == ' ') c = '_';
      std::ofstream(write_inputs + "/" + name + (absl::EndsWith(name, ".js") ? "" : ".js"), std::ios::binary) << in.source;
    }
  }
  bool own_cache = cache_dir.empty();
  if (own_cache) {
    cache_dir = (std::filesystem::temp_directory_path() / ("barrage_transform_bench_" + std::to_string(getpid())))
                    .string();
  }
  int failures = 0;
  printf("%-28s %9s  %-6s %10s %10s %10s  %-6s %10s\n", "input", "bytes", "path", "cold s", "cold cpu", "compile s",
         "warm", "warm s");
  for (const Input& in : inputs) {
    TransformerOptions options;
    options.cache_dir = cache_dir;
    options.log = [](absl::string_view) {};
    double t0 = WallSeconds(), c0 = CpuSeconds();
    auto cold = Transformer::Create(options);
    absl::StatusOr<TransformedModule> out = (*cold)->Transform(in.source, "/bench/" + in.name + ".js");
    double cold_s = WallSeconds() - t0, cold_cpu = CpuSeconds() - c0;
    if (!out.ok()) {
      printf("%-28s FAILED: %s\n", in.name.c_str(), std::string(out.status().message()).c_str());
      ++failures;
      continue;
    }
    bool compiled = false;
    double compile_s = CompileSeconds(*out, &compiled);
    const char* path = PathOf((*cold)->counts());
    cold->reset();
    t0 = WallSeconds();
    auto warm = Transformer::Create(options);
    absl::StatusOr<TransformedModule> again = (*warm)->Transform(in.source, "/bench/" + in.name + ".js");
    double warm_s = WallSeconds() - t0;
    const char* warm_path = PathOf((*warm)->counts());
    printf("%-28s %9zu  %-6s %10.3f %10.3f %10.3f  %-6s %10.3f\n", in.name.c_str(), in.source.size(), path, cold_s,
           cold_cpu, compile_s, warm_path, warm_s);
    fflush(stdout);
    if (!compiled || !again.ok() || again->code != out->code || !(again->lines == out->lines)) {
      printf("  ^ the output does not compile, or the warm run differs\n");
      ++failures;
    }
    if (in.kind == "es5" && std::string(path) != "as is") {
      printf("  ^ an ES5 library should need no Babel\n");
      ++failures;
    }
    if (compare_kb > 0 && in.kind == "es2015" && in.kb <= compare_kb) {
      TransformerOptions plain;
      plain.patch_babel = false;
      plain.log = options.log;
      t0 = WallSeconds();
      absl::StatusOr<TransformedModule> published =
          (*Transformer::Create(plain))->Transform(in.source, "/bench/" + in.name + ".js");
      const bool same = published.ok() && published->code == out->code && published->lines == out->lines;
      printf("  published Babel: %.3f s, output %s\n", WallSeconds() - t0, same ? "identical" : "DIFFERENT");
      if (!same) ++failures;
    }
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  printf("peak RSS %ld MB\n", ru.ru_maxrss / 1024);
  if (own_cache) std::filesystem::remove_all(cache_dir);
  return failures == 0 ? 0 : 1;
}
