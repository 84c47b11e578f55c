#include "tests/testing/paths.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"

namespace barrage::testutil {
namespace {

// Directories made by TempDir(), removed at exit. A function-local static,
// so it is destroyed (and cleans up) after the tests have run.
class TempDirs {
 public:
  ~TempDirs() {
    for (const std::string& dir : dirs_) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  }
  void Add(std::string dir) {
    std::lock_guard lock(mu_);
    dirs_.push_back(std::move(dir));
  }

 private:
  std::mutex mu_;
  std::vector<std::string> dirs_;
};

TempDirs& AllTempDirs() {
  static TempDirs dirs;
  return dirs;
}

}  // namespace

std::string BinaryPath(const std::string& name) {
  const char* dir = getenv("BARRAGE_BIN_DIR");
  return absl::StrCat(dir != nullptr && *dir != '\0' ? dir : BARRAGE_BINARY_DIR, "/", name);
}

std::string SourcePath(const std::string& relative) {
  return absl::StrCat(BARRAGE_SOURCE_DIR, "/", relative);
}

std::string DataPath(const std::string& relative) {
  return SourcePath(absl::StrCat("scripts/examples/", relative));
}

std::string TempDir() {
  const char* tmp = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/barrage_test_XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    perror("TempDir: mkdtemp");
    abort();
  }
  AllTempDirs().Add(pattern);
  return pattern;
}

}  // namespace barrage::testutil
