#include "agent/js/bytecode_lines.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/js/duktape/heap.h"

namespace barrage::agent::js {
namespace {

using ::testing::HasSubstr;

// A heap of its own per test.
class BytecodeLinesTest : public ::testing::Test {
 protected:
  void SetUp() override { ctx_ = CreateHeap(nullptr); }
  void TearDown() override { duk_destroy_heap(ctx_); }

  // Duktape's dump of the function expression `source`.
  std::string Dump(const std::string& source) {
    duk_push_string(ctx_, "/t.js");
    EXPECT_EQ(duk_pcompile_lstring_filename(ctx_, DUK_COMPILE_FUNCTION, source.data(), source.size()), 0)
        << duk_safe_to_string(ctx_, -1);
    duk_dump_function(ctx_);
    duk_size_t size = 0;
    const char* data = static_cast<const char*>(duk_get_buffer(ctx_, -1, &size));
    std::string out(data, size);
    duk_pop(ctx_);
    return out;
  }

  // Loads bytecode, calls it with `arg`, and returns what it threw:
  // "<lineNumber>|<stack>".
  std::string RunAndCatch(const std::string& bytecode, int arg) {
    void* buf = duk_push_fixed_buffer(ctx_, bytecode.size());
    memcpy(buf, bytecode.data(), bytecode.size());
    duk_load_function(ctx_);
    duk_push_int(ctx_, arg);
    std::string out;
    if (duk_pcall(ctx_, 1) == DUK_EXEC_SUCCESS) {
      out = "returned";
    } else {
      duk_get_prop_string(ctx_, -1, "lineNumber");
      out = absl::StrCat(duk_get_int(ctx_, -1), "|");
      duk_pop(ctx_);
      duk_get_prop_string(ctx_, -1, "stack");
      absl::StrAppend(&out, duk_safe_to_string(ctx_, -1));
      duk_pop(ctx_);
    }
    duk_pop(ctx_);
    return out;
  }

  duk_context* ctx_ = nullptr;
};

LineMap Identity(uint32_t lines) {
  std::vector<uint32_t> v;
  for (uint32_t i = 1; i <= lines; ++i) v.push_back(i);
  return LineMap(std::move(v));
}

// Every form of pc2line's encoding: more than 64 instructions (several
// runs), line steps of 0, 1-4, -128..127 and beyond (the 32-bit form, both
// ways), nested functions, constants of both kinds, arguments and locals.
std::string BigSource() {
  std::string src = "function (n) {\n  var total = 0, s = 'x';\n";
  for (int i = 0; i < 120; ++i) {
    absl::StrAppend(&src, "  total += n * ", i, " + s.length; if (n === ", i, ") throw new Error('at ", i, "');\n");
    if (i % 10 == 3) src += std::string(i == 53 ? 1000 : 150, '\n');  // big jumps
  }
  src +=
      "  function inner(a, b) {\n"
      "    var x = a + b;\n"
      "\n"
      "    if (x > 1000) throw new Error('inner');\n"
      "    return x;\n"
      "  }\n"
      "  return inner(n, 2.5) + (function () { return 1; })();\n"
      "}";
  return src;
}

TEST_F(BytecodeLinesTest, IdentityGivesDuktapesOwnBytes) {
  const std::string src = BigSource();
  const std::string bytecode = Dump(src);
  absl::StatusOr<std::string> same = RemapBytecodeLines(bytecode, Identity(3000));
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(*same, bytecode);
}

TEST_F(BytecodeLinesTest, DuktapeReportsTheMappedLines) {
  const std::string src = BigSource();
  const std::string bytecode = Dump(src);
  // Original line of generated line g: g * 7 + 100000 (32-bit steps), so
  // each reported line says which generated line it was.
  std::vector<uint32_t> lines;
  for (uint32_t g = 1; g <= 3000; ++g) lines.push_back(g * 7 + 100000);
  absl::StatusOr<std::string> mapped = RemapBytecodeLines(bytecode, LineMap(lines));
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  for (int n : {0, 5, 53, 54, 119}) {
    SCOPED_TRACE(n);
    const std::string plain = RunAndCatch(bytecode, n);
    const std::string remapped = RunAndCatch(*mapped, n);
    const int generated = std::stoi(plain.substr(0, plain.find('|')));
    ASSERT_GT(generated, 0) << plain;
    EXPECT_EQ(remapped.substr(0, remapped.find('|')), std::to_string(generated * 7 + 100000)) << remapped;
    EXPECT_THAT(remapped, HasSubstr(absl::StrCat("(/t.js:", generated * 7 + 100000, ")")));
  }
  // A nested function's frame and its caller's.
  const std::string inner = RunAndCatch(*mapped, 5000);
  const std::string plain_inner = RunAndCatch(bytecode, 5000);
  EXPECT_THAT(plain_inner, HasSubstr("at inner (/t.js:"));
  const size_t at = plain_inner.find("at inner (/t.js:") + 16;
  const int inner_line = std::stoi(plain_inner.substr(at));
  EXPECT_THAT(inner, HasSubstr(absl::StrCat("at inner (/t.js:", inner_line * 7 + 100000, ")")));
}

TEST_F(BytecodeLinesTest, LinesMayGoBackwardsOrToZero) {
  const std::string src = "function (n) {\n  var a = 1;\n  if (n) throw new Error('one');\n  throw new Error('two');\n}";
  const std::string bytecode = Dump(src);
  // Generated lines 3 and 4 are the user's 40 and 2; the rest is Babel's.
  absl::StatusOr<std::string> mapped = RemapBytecodeLines(bytecode, LineMap({0, 0, 40, 2}));
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_THAT(RunAndCatch(*mapped, 1), ::testing::StartsWith("40|Error: one"));
  EXPECT_THAT(RunAndCatch(*mapped, 0), ::testing::StartsWith("2|Error: two"));
  // Lines past the map's end have no user's line.
  absl::StatusOr<std::string> short_map = RemapBytecodeLines(bytecode, LineMap({1}));
  ASSERT_TRUE(short_map.ok());
  EXPECT_THAT(RunAndCatch(*short_map, 1), ::testing::StartsWith("0|Error: one"));
}

TEST_F(BytecodeLinesTest, AnythingButADumpIsAnErrorNeverABadRead) {
  const std::string bytecode = Dump(BigSource());
  // Cut anywhere: never read past the end, always an error.
  for (size_t n = 0; n < bytecode.size(); ++n) {
    absl::StatusOr<std::string> out = RemapBytecodeLines(absl::string_view(bytecode).substr(0, n), Identity(10));
    ASSERT_FALSE(out.ok()) << "cut at " << n;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  }
  EXPECT_THAT(std::string(RemapBytecodeLines(bytecode + "x", Identity(10)).status().message()),
              HasSubstr("bytes after the outermost function"));
  EXPECT_THAT(std::string(RemapBytecodeLines("x" + bytecode.substr(1), Identity(10)).status().message()),
              HasSubstr("no marker"));
  // Every byte changed in turn: an error or a remapped dump, never a crash
  // (the sanitizer builds watch the reads).
  for (size_t i = 1; i < bytecode.size(); ++i) {
    std::string damaged = bytecode;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    (void)RemapBytecodeLines(damaged, Identity(10));
  }
}

}  // namespace
}  // namespace barrage::agent::js
