// The archive reader (common/archive.h) takes bytes from a user's .tar and
// from the control plane: it must refuse anything malformed with an error,
// never crash; what it accepts must write back and read again the same.
#include "common/archive.h"
#include "tests/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<barrage::Archive> archive = barrage::ReadArchive(barrage::fuzz::AsView(data, size), "fuzz.tar", 1 << 22);
  if (!archive.ok()) return 0;
  absl::StatusOr<std::string> written = barrage::WriteArchive(*archive);
  if (!written.ok()) return 0;  // e.g. a path WriteArchive cannot represent: refused, not crashed
  absl::StatusOr<barrage::Archive> again = barrage::ReadArchive(*written, "again.tar", 1 << 24);
  if (!again.ok() || again->modules != archive->modules || again->files != archive->files ||
      again->main_path != archive->main_path) {
    std::fprintf(stderr, "archive did not round-trip: %s\n", again.ok() ? "contents differ" : std::string(again.status().message()).c_str());
    std::abort();
  }
  return 0;
}
