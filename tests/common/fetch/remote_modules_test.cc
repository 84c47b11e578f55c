#include "common/fetch/remote_modules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/testing/paths.h"

namespace barrage {
namespace {

TEST(RemoteModulesTest, CachePathMirrorsAK6ArchivesHttpsFolder) {
  EXPECT_EQ(RemoteModuleCachePath("/c", "https://jslib.k6.io/k6-utils/1.4.0/index.js"),
            "/c/https/jslib.k6.io/k6-utils/1.4.0/index.js");
  EXPECT_EQ(RemoteModuleCachePath("/c", "https://127.0.0.1:8443/x.js"), "/c/https/127.0.0.1:8443/x.js");
  // A query stays in the file name; a '/' in it cannot make a folder.
  EXPECT_EQ(RemoteModuleCachePath("/c", "https://h/x.js?a=b/c"), "/c/https/h/x.js?a=b%2Fc");
}

TEST(RemoteModulesTest, ACachedModuleNeedsNoNetwork) {
  const std::string dir = testutil::TempDir();
  // A host that does not resolve: only the cache can answer.
  const std::string url = "https://barrage-test.invalid/lib/index.js";
  std::filesystem::create_directories(dir + "/https/barrage-test.invalid/lib");
  std::ofstream(dir + "/https/barrage-test.invalid/lib/index.js") << "export const x = 1;\n";
  RemoteModuleOptions options;
  options.cache_dir = dir;
  absl::StatusOr<std::string> source = LoadRemoteModule(url, options);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(*source, "export const x = 1;\n");
}

}  // namespace
}  // namespace barrage
