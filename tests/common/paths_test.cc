#include "common/paths.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace barrage {
namespace {

using ::testing::HasSubstr;

// Go's own path.Clean cases (src/path/path_test.go).
TEST(PathsTest, CleanPathMatchesGo) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "."},           {"abc", "abc"},         {"abc/def", "abc/def"},   {"a/b/c", "a/b/c"},
      {".", "."},          {"..", ".."},           {"../..", "../.."},       {"../../abc", "../../abc"},
      {"/abc", "/abc"},    {"/", "/"},             {"abc/", "abc"},          {"abc/def/", "abc/def"},
      {"a/b/c/", "a/b/c"}, {"./", "."},            {"../", ".."},            {"../../", "../.."},
      {"/abc/", "/abc"},   {"abc//def//ghi", "abc/def/ghi"},                 {"//abc", "/abc"},
      {"///abc", "/abc"},  {"//abc//", "/abc"},    {"abc//", "abc"},         {"abc/./def", "abc/def"},
      {"/./abc/def", "/abc/def"},                  {"abc/.", "abc"},         {"abc/def/ghi/../jkl", "abc/def/jkl"},
      {"abc/def/../ghi/../jkl", "abc/jkl"},        {"abc/def/..", "abc"},    {"abc/def/../..", "."},
      {"/abc/def/../..", "/"},                     {"abc/def/../../..", ".."},
      {"/abc/def/../../..", "/"},                  {"abc/def/../../../ghi/jkl/../../../mno", "../../mno"},
      {"abc/./../def", "def"},                     {"abc//./../def", "def"}, {"abc/../../././../def", "../../def"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(CleanPath(in), want) << in;
}

TEST(PathsTest, AbsPathJoinsRelativeAndKeepsAbsolute) {
  EXPECT_EQ(AbsPath("/home/u/test", "../protos/x.proto"), "/home/u/protos/x.proto");
  EXPECT_EQ(AbsPath("/home/u/test", "./path//to/x.proto"), "/home/u/test/path/to/x.proto");
  EXPECT_EQ(AbsPath("/home/u/test", "whatever/../path/x.proto"), "/home/u/test/path/x.proto");
  EXPECT_EQ(AbsPath("/home/u/test", "/etc//x/../y"), "/etc/y");
  EXPECT_EQ(AbsPath("/", "../../x"), "/x");
}

TEST(PathsTest, JoinPathPutsAnAbsoluteNameBelowTheDirectory) {
  // k6's protocompile resolver: filepath.Join(importPath, name).
  EXPECT_EQ(JoinPath("/some/dir", "/some/dir/x.proto"), "/some/dir/some/dir/x.proto");
  EXPECT_EQ(JoinPath("../protos", "x.proto"), "../protos/x.proto");
  EXPECT_EQ(JoinPath("/", "/some/dir/x.proto"), "/some/dir/x.proto");
}

TEST(PathsTest, DirOfLocalAndRemoteKeys) {
  EXPECT_EQ(DirOf("/a/b/c.js"), "/a/b");
  EXPECT_EQ(DirOf("/c.js"), "/");
  EXPECT_EQ(DirOf("https://jslib.k6.io/k6-utils/1.4.0/index.js"), "https://jslib.k6.io/k6-utils/1.4.0");
  EXPECT_EQ(DirOf("https://h/index.js?v=1"), "https://h/");
}

TEST(PathsTest, KeyForms) {
  EXPECT_TRUE(IsCleanAbsolutePath("/a/b"));
  EXPECT_TRUE(IsCleanAbsolutePath("/"));
  EXPECT_FALSE(IsCleanAbsolutePath("a/b"));
  EXPECT_FALSE(IsCleanAbsolutePath("/a/../b"));
  EXPECT_FALSE(IsCleanAbsolutePath("/a//b"));
  EXPECT_FALSE(IsCleanAbsolutePath("/a/"));
  EXPECT_FALSE(IsCleanAbsolutePath(std::string("/a\0b", 4)));
  EXPECT_TRUE(IsRemoteKey("https://jslib.k6.io/k6-utils/1.4.0/index.js"));
  EXPECT_TRUE(IsRemoteKey("https://127.0.0.1:8443/x.js?v=1"));
  EXPECT_FALSE(IsRemoteKey("https:///x.js"));
  EXPECT_FALSE(IsRemoteKey("https://h/a/../x.js"));
  EXPECT_FALSE(IsRemoteKey("https://user@h/x.js"));
  EXPECT_FALSE(IsRemoteKey("http://h/x.js"));
  EXPECT_FALSE(IsRemoteKey("https://../x.js"));
}

TEST(PathsTest, ResolvesSpecifiersAsK6Loader) {
  EXPECT_EQ(*ResolveModuleSpecifier("/t/sub", "../lib/x.js"), "/t/lib/x.js");
  EXPECT_EQ(*ResolveModuleSpecifier("/t/sub", "./a//b/./x.js"), "/t/sub/a/b/x.js");
  EXPECT_EQ(*ResolveModuleSpecifier("/t/sub", "/abs/x.js"), "/abs/x.js");
  EXPECT_EQ(*ResolveModuleSpecifier("/t/sub", "file:///A/B%20D/x.js"), "/A/B D/x.js");
  EXPECT_EQ(*ResolveModuleSpecifier("/t", "https://jslib.k6.io/k6-utils/1.4.0/index.js"),
            "https://jslib.k6.io/k6-utils/1.4.0/index.js");
  EXPECT_EQ(*ResolveModuleSpecifier("/t", "HTTPS://h/a/./b.js#frag"), "https://h/a/b.js");
  // Relative to a remote module: the same host.
  EXPECT_EQ(*ResolveModuleSpecifier("https://h/lib/1.0", "./util.js"), "https://h/lib/1.0/util.js");
  EXPECT_EQ(*ResolveModuleSpecifier("https://h/lib/1.0", "../../x.js?v=2"), "https://h/x.js?v=2");
  EXPECT_EQ(*ResolveModuleSpecifier("https://h/lib", "/root.js"), "https://h/root.js");
}

TEST(PathsTest, RefusesSpecifiersK6Refuses) {
  auto msg = [](std::string_view base, std::string_view spec) {
    absl::StatusOr<std::string> r = ResolveModuleSpecifier(base, spec);
    EXPECT_FALSE(r.ok()) << spec;
    return std::string(r.status().message());
  };
  EXPECT_EQ(msg("/t", "http://example.com/html"),
            "only supported schemes for imports are file and https, http://example.com/html has `http`");
  EXPECT_EQ(msg("/t", "ws://example.com/html"),
            "only supported schemes for imports are file and https, ws://example.com/html has `ws`");
  EXPECT_EQ(msg("https://example.com", "file:///etc/shadow"),
            "origin (https://example.com/) not allowed to load local file: file:///etc/shadow");
  EXPECT_THAT(msg("/t", "example.com/html"),
              HasSubstr("The moduleSpecifier \"example.com/html\" couldn't be recognised as something k6 supports"));
  EXPECT_THAT(msg("/t", "github.com/a/b/c.js"), HasSubstr("github.com 'special' urls are no longer supported"));
  EXPECT_THAT(msg("/t", "cdnjs.com/libraries/Faker"), HasSubstr("cdnjs.com 'special' urls are no longer supported"));
  EXPECT_EQ(msg("/t", ""), "local or remote path required");
  EXPECT_THAT(msg("/t", std::string("./a\0b.js", 8)), HasSubstr("NUL"));
}

TEST(PathsTest, ResolvesFilePaths) {
  EXPECT_EQ(*ResolveFilePath("/t/sub", "../token.txt"), "/t/token.txt");
  EXPECT_EQ(*ResolveFilePath("/t/sub", "file:///abs//x"), "/abs/x");
  EXPECT_EQ(*ResolveFilePath("/t/sub", "file://rel/x"), "/t/sub/rel/x");
  EXPECT_FALSE(ResolveFilePath("/t", std::string("/etc/passwd\0.txt", 16)).ok());
}

}  // namespace
}  // namespace barrage
