#include "agent/js/transform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

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
  absl::StatusOr<std::string> out = t->Transform(src, "/lib.js");
  ASSERT_TRUE(out.ok()) << out.status();
  // Same lines: the prefix shares the first line.
  EXPECT_EQ(*out, "\"use strict\";" + src);
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
  absl::StatusOr<std::string> out =
      t->Transform("var f = [];\nfor (var i = 0; i < 3; i++) { const j = i; f.push(function () { return j; }); }\n"
                   "{ const z = 1; }\nmodule.exports = [f[0](), typeof z];\n",
                   "/lib.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(t->counts().babel, 1);
  EXPECT_THAT(*out, Not(HasSubstr("const ")));
}

TEST_F(TransformTest, ModulesAndEs2015GoThroughBabelKeepingLines) {
  auto t = Make();
  absl::StatusOr<std::string> out = t->Transform(kEs2015, "/script.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(t->counts().babel, 1);
  EXPECT_THAT(*out, StartsWith("'use strict';"));
  EXPECT_THAT(*out, HasSubstr("wörld 😀"));
  // retainLines: the function that returns greet() is still on line 3.
  std::vector<std::string> lines = absl::StrSplit(*out, '\n');
  ASSERT_GE(lines.size(), 3u);
  EXPECT_THAT(lines[2], HasSubstr("return greet()"));
}

TEST_F(TransformTest, SyntaxErrorKeepsItsFormat) {
  auto t = Make();
  absl::StatusOr<std::string> out =
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
    absl::StatusOr<std::string> out = t->Transform(kEs2015, "/a/script.js");
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(t->counts().babel, 1);
    first = *out;
  }
  auto t = Make(Cached());
  // Another path, same content: the same entry.
  absl::StatusOr<std::string> out = t->Transform(kEs2015, "/b/other.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, first);
  EXPECT_EQ(t->counts().cached, 1);
  EXPECT_EQ(t->counts().babel, 0);
  // Other content, other entry.
  ASSERT_TRUE(t->Transform(std::string(kEs2015) + "\n", "/b/other.js").ok());
  EXPECT_EQ(t->counts().babel, 1);
}

TEST_F(TransformTest, DamagedCacheEntryIsIgnoredAndRewritten) {
  std::string good;
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
    absl::StatusOr<std::string> out = t->Transform(kEs2015, "/script.js");
    ASSERT_TRUE(out.ok()) << damage << ": " << out.status();
    EXPECT_EQ(*out, good) << damage;
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
  absl::StatusOr<std::string> out = t->Transform(kEs2015, "/script.js");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "\"use strict\";" + std::string(kEs2015));
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
  absl::StatusOr<std::string> out = t->Transform(kEs2015, "/script.js");
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
  absl::StatusOr<std::string> a = patched->Transform(src, "/s.js");
  absl::StatusOr<std::string> b = unpatched->Transform(src, "/s.js");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
}

}  // namespace
}  // namespace barrage::agent::js
