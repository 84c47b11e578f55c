#include "agent/js/transform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "agent/js/transform_cache.h"

namespace barrage::agent::js {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// An ES2015 module: it needs Babel.
constexpr char kEs2015[] =
    "import { check } from 'k6';\n"
    "const greet = (name = 'wörld 😀') => `hello ${name}`;\n"
    "export default function () { return greet(); }\n";

// The 1-based line of the generated code holding `text` (0: none).
uint32_t LineOf(const std::string& code, absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(code, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (absl::StrContains(lines[i], text)) return static_cast<uint32_t>(i + 1);
  }
  ADD_FAILURE() << "no line holds " << text << " in:\n" << code;
  return 0;
}

class TransformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("barrage_transform_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Transformer> Make(TransformerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Transformer>> t = Transformer::Create(std::move(options));
    EXPECT_TRUE(t.ok()) << t.status();
    return std::move(*t);
  }
  TransformerOptions Cached() {
    TransformerOptions o;
    o.cache_dir = (dir_ / "cache").string();
    return o;
  }

  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

TEST_F(TransformTest, Es5FileRunsAsItIsButStrictWithoutBabel) {
  auto t = Make();
  const std::string src = "var _ = require('./x.js');\nmodule.exports = function (a) { return a * 2; };\n";
  absl::StatusOr<TransformedModule> out = t->Transform(src, "/lib.js");
  ASSERT_TRUE(out.ok()) << out.status();
  // Same lines: the prefix shares the first line.
  EXPECT_EQ(out->code, "\"use strict\";" + src);
  EXPECT_TRUE(out->lines.empty());
  EXPECT_EQ(t->counts().untouched, 1);
  EXPECT_EQ(t->counts().babel, 0);
}

TEST_F(TransformTest, WordConstOutsideCodeDoesNotNeedBabel) {
  auto t = Make();
  // protobufjs' dist file has "@const" in its JSDoc: it must not cost a Babel run.
  const std::string src =
      "/** @const */ var a = 'const'; // const\nvar re = /const/; var o = {}; o['const'] = 1;\n";
  ASSERT_TRUE(t->Transform(src, "/lib.js").ok());
  EXPECT_EQ(t->counts().untouched, 1);
}

TEST_F(TransformTest, ConstGoesThroughBabelForItsBlockScope) {
  // Duktape accepts `const` but scopes it like `var`: the closures would
  // all see 2, and typeof z would be "number".
  auto t = Make();
  absl::StatusOr<TransformedModule> out =
      t->Transform("var f = [];\nfor (var i = 0; i < 3; i++) { const j = i; f.push(function () { return j; }); }\n"
                   "{ const z = 1; }\nmodule.exports = [f[0](), typeof z];\n",
                   "/lib.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(t->counts().babel, 1);
  EXPECT_THAT(out->code, Not(HasSubstr("const ")));
}

TEST_F(TransformTest, ModulesAndEs2015GoThroughBabelWithTheirLines) {
  auto t = Make();
  absl::StatusOr<TransformedModule> out = t->Transform(kEs2015, "/script.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(t->counts().babel, 1);
  EXPECT_THAT(out->code, StartsWith("'use strict';"));
  EXPECT_THAT(out->code, HasSubstr("wörld 😀"));
  // The line that returns greet() is the user's line 3.
  EXPECT_EQ(out->lines.Original(LineOf(out->code, "return greet()")), 3u);
}

TEST_F(TransformTest, SyntaxErrorKeepsItsFormat) {
  auto t = Make();
  absl::StatusOr<TransformedModule> out =
      t->Transform("import { check } from 'k6';\nexport default () => {\n  let x = ;\n};\n", "/s.js");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), StartsWith("/s.js:3:11: SyntaxError: Unexpected token"));
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("> 3 |   let x = ;"));
}

TEST_F(TransformTest, SecondRunComesFromTheCacheWithoutBabel) {
  std::string first;
  {
    auto t = Make(Cached());
    absl::StatusOr<TransformedModule> out = t->Transform(kEs2015, "/a/script.js");
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(t->counts().babel, 1);
    first = out->code;
    EXPECT_FALSE(out->lines.empty());
  }
  auto t = Make(Cached());
  // Another path, same content: the same entry.
  absl::StatusOr<TransformedModule> out = t->Transform(kEs2015, "/b/other.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->code, first);
  // The line map comes back with the code.
  EXPECT_EQ(out->lines.Original(LineOf(out->code, "return greet()")), 3u);
  EXPECT_EQ(t->counts().cached, 1);
  EXPECT_EQ(t->counts().babel, 0);
  // Other content, other entry.
  ASSERT_TRUE(t->Transform(std::string(kEs2015) + "\n", "/b/other.js").ok());
  EXPECT_EQ(t->counts().babel, 1);
}

// Babel's functions from arrows come out as method definitions, which
// Duktape makes without a prototype or a name binding (transform.cc,
// arrowsAsMethods); a function that names itself stays a function.
TEST_F(TransformTest, ArrowsBecomeMethodDefinitions) {
  auto t = Make();
  absl::StatusOr<TransformedModule> out = t->Transform(
      "import { check } from 'k6';\n"
      "export default () => {\n"
      "  check(1, { 'status is OK': (r) => r === 1 });\n"
      "  return [1].map((x) => x);\n"
      "};\n"
      "const again = (n) => (n > 0 ? again(n - 1) : 0);\n",
      "/a/arrows.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->code, HasSubstr("statusIsOK(r) {"));
  EXPECT_THAT(out->code, Not(HasSubstr("function statusIsOK")));
  EXPECT_THAT(out->code, HasSubstr("''(x) {"));
  EXPECT_THAT(out->code, HasSubstr("function again(n)"));
  EXPECT_EQ(out->lines.Original(LineOf(out->code, "r === 1")), 3u);
  EXPECT_EQ(out->lines.Original(LineOf(out->code, "return x")), 4u);
}

TEST_F(TransformTest, DamagedCacheEntryIsIgnoredAndRewritten) {
  TransformedModule good;
  {
    auto t = Make(Cached());
    good = *t->Transform(kEs2015, "/script.js");
  }
  std::vector<std::filesystem::path> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "cache")) entries.push_back(e.path());
  ASSERT_EQ(entries.size(), 1u);
  for (const std::string& damage : {std::string("truncated"), std::string("edited"), std::string("garbage")}) {
    std::ifstream in(entries[0], std::ios::binary);
    std::string entry((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    if (damage == "truncated") entry.resize(entry.size() / 2);
    if (damage == "edited") entry.back() = entry.back() == 'x' ? 'y' : 'x';
    if (damage == "garbage") entry = "\x01\x02 not an entry";
    std::ofstream(entries[0], std::ios::binary | std::ios::trunc) << entry;
    auto t = Make(Cached());
    absl::StatusOr<TransformedModule> out = t->Transform(kEs2015, "/script.js");
    ASSERT_TRUE(out.ok()) << damage << ": " << out.status();
    EXPECT_EQ(out->code, good.code) << damage;
    EXPECT_EQ(out->lines, good.lines) << damage;
    EXPECT_EQ(t->counts().cached, 0) << damage;
    EXPECT_EQ(t->counts().babel, 1) << damage;
  }
  // The last run rewrote the entry: the next one reads it.
  auto t = Make(Cached());
  ASSERT_TRUE(t->Transform(kEs2015, "/script.js").ok());
  EXPECT_EQ(t->counts().cached, 1);
}

TEST_F(TransformTest, CacheReadersNeverSeeHalfAnEntry) {
  TransformCache cache((dir_ / "cache").string());
  const std::string key = Sha256Hex({"k"});
  const std::string big(4 << 20, 'x');  // 4 MiB: many write() calls
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, hits{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) EXPECT_TRUE(cache.Put(key, big).ok());
    });
  }
  std::thread reader([&] {
    while (!stop) {
      std::optional<std::string> got = cache.Get(key);
      if (got && *got != big) ++torn;
      if (got) ++hits;
    }
  });
  for (std::thread& th : threads) th.join();
  stop = true;
  reader.join();
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(cache.Get(key), big);
  // No temporary files left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "cache")) ++files, (void)e;
  EXPECT_EQ(files, 1);
}

TEST_F(TransformTest, UnwritableCacheOnlyCostsBabelRuns) {
  std::ofstream(dir_.string() + "-file") << "not a directory";
  TransformerOptions o;
  o.cache_dir = dir_.string() + "-file/transform";
  auto t = Make(o);
  EXPECT_TRUE(t->Transform(kEs2015, "/script.js").ok());
  EXPECT_TRUE(t->Transform(kEs2015, "/script.js").ok());
  EXPECT_EQ(t->counts().babel, 2);
  std::filesystem::remove(dir_.string() + "-file");
}

TEST_F(TransformTest, BaseModeNeverTransforms) {
  TransformerOptions o;
  o.mode = CompatibilityMode::kBase;
  auto t = Make(o);
  absl::StatusOr<TransformedModule> out = t->Transform(kEs2015, "/script.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->code, "\"use strict\";" + std::string(kEs2015));
  EXPECT_TRUE(out->lines.empty());
  EXPECT_EQ(t->counts().untouched, 1);
  EXPECT_EQ(t->counts().babel, 0);
}

class FlagHooks : public HeapHooks {
 public:
  bool ShouldInterrupt() const override { return stop; }
  std::atomic<bool> stop{false};
};

TEST_F(TransformTest, LongTransformIsAnnouncedByFileName) {
  std::vector<std::string> lines;
  TransformerOptions o = Cached();
  o.announce_after = absl::ZeroDuration();
  o.log = [&lines](absl::string_view line) { lines.emplace_back(line); };
  auto t = Make(o);
  ASSERT_TRUE(t->Transform(kEs2015, "/dir/slow.js").ok());
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("transforming /dir/slow.js (1 KB) from ES2015+ to ES5 with Babel"));
  EXPECT_THAT(lines[0], HasSubstr("cached"));
  // A file that needs no Babel is never announced.
  lines.clear();
  ASSERT_TRUE(t->Transform("var a = 1;\n", "/dir/fast.js").ok());
  EXPECT_TRUE(lines.empty());
}

TEST_F(TransformTest, InterruptStopsTheTransform) {
  FlagHooks hooks;
  TransformerOptions o;
  o.hooks = &hooks;
  o.announce_after = absl::ZeroDuration();
  // The first announcement (during the transform) sets the flag, like a
  // Ctrl-C arriving while Babel runs.
  o.log = [&hooks](absl::string_view) { hooks.stop = true; };
  auto t = Make(o);
  absl::StatusOr<TransformedModule> out = t->Transform(kEs2015, "/script.js");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
  // Files that need no Babel still go through; Babel stays stopped while the flag is up.
  EXPECT_TRUE(t->Transform("var a = 1;\n", "/a.js").ok());
  EXPECT_EQ(t->Transform(kEs2015, "/script.js").status().code(), absl::StatusCode::kCancelled);
}

TEST_F(TransformTest, PatchedBabelWritesWhatBabelWrites) {
  // A block with many statements (where the patches matter) and the
  // constructs the patched code paths see: classes, spread, switch cases
  // with let, labels.
  std::string src = "import { check } from 'k6';\nexport function run(items) {\n";
  for (int i = 0; i < 120; ++i) {
    src += "  let v" + std::to_string(i) + " = [...items].map((x) => x + " + std::to_string(i) + ");\n";
  }
  src += "  switch (items.length) { case 0: let a = 1; break; default: { const b = `n=${a}`; } }\n"
         "  outer: for (const x of items) { for (let y of items) { if (y) continue outer; } }\n"
         "  class K extends Object { m() { return super.toString(); } }\n  return new K();\n}\n";
  auto patched = Make();
  TransformerOptions plain;
  plain.patch_babel = false;
  auto unpatched = Make(plain);
  absl::StatusOr<TransformedModule> a = patched->Transform(src, "/s.js");
  absl::StatusOr<TransformedModule> b = unpatched->Transform(src, "/s.js");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->code, b->code);
  EXPECT_EQ(a->lines, b->lines);
}

}  // namespace
}  // namespace barrage::agent::js

namespace barrage::agent::js {
namespace {

// Each construct Babel rewrites, in one module. Every line holding a
// marker ('M1'...) is a statement whose user line an error there must
// report; the marker stays in the generated code, so the test finds the
// generated line that holds it and asks the line map. The markers
// include the cases retainLines got wrong (hoisted exported functions)
// and those where Babel writes several statements for one (destructuring,
// regenerator's async functions and generators, class glue, default
// parameters, spread).
constexpr char kConstructs[] = R"JS(import { other } from './other.js';
// a comment, then a blank line

export function hoisted(x) {
  const y = x + 1;

  throw new Error('<M1> ' + y);
}
export default function () { return hoisted('<M2>'); }
export class Base {
  constructor(a) {
    this.a = a('<M3>');
  }
}
export class Shape extends Base {
  constructor(a) {
    super(a);
    this.b = other('<M4>');
  }
  area({ w, h = 2 }) {
    const { p, q = 2, ...rest } = other('<M5>');
    throw new Error(`<M6> ${w}
      by ${h}`);
  }
  static make() { return new Shape(() => '<M7>'); }
  get size() { return other('<M8>'); }
}
export async function fetchIt(client) {
  const a = await client.get('<M9>');
  const b = await client.put(a, '<M10>');
  if (b) {
    throw new Error('<M11> after await ' + b);
  }
  for (const x of await client.list()) {
    await other(x, '<M12>');
  }
}
export const arrow = (xs) => xs.map((v) => {
  if (v > 2) {
    throw new Error('<M13> map ' + v);
  }
  return other(v, '<M14>');
});
export const short = (v) => other(v, '<M15>');
export function destructure(input) {
  const [first, , third = 3] = input;
  const { a: { b = other('<M16>') } } = first;
  other(third, '<M17>');
}
export function templates(first, third) {
  const msg = other(`<M18> line one
line two ${first}
line three ${third}`);
  return msg;
}
export function* gen(n) {
  yield other(n, '<M19>');
  throw new Error('<M20>');
}
export function defaults(a = other('<M21>'), ...rest) {
  return { ...a, rest, m: other('<M22>') };
}
export function loops(items) {
  for (const x of items) {
    other(x, '<M23>');
  }
  return [...items, '<M24>'].map((x) => x * 2);
}
)JS";

TEST_F(TransformTest, EveryConstructKeepsTheUsersLine) {
  auto t = Make();
  absl::StatusOr<TransformedModule> out = t->Transform(kConstructs, "/lib/constructs.js");
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(t->counts().babel, 1);
  for (int m = 1; m <= 24; ++m) {
    const std::string marker = "<M" + std::to_string(m) + ">";
    SCOPED_TRACE(marker);
    EXPECT_EQ(out->lines.Original(LineOf(out->code, marker)), LineOf(kConstructs, marker)) << out->code;
  }
  // Babel's helpers are not the user's code.
  EXPECT_EQ(out->lines.Original(LineOf(out->code, "function _classCallCheck(")), 0u);
  EXPECT_EQ(out->lines.Original(LineOf(out->code, "function _asyncToGenerator(")), 0u);
}

}  // namespace
}  // namespace barrage::agent::js
