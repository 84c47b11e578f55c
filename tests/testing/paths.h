// Where tests find the programs, the repository's files and scratch space.
#ifndef BARRAGE_TESTS_TESTING_PATHS_H_
#define BARRAGE_TESTS_TESTING_PATHS_H_

#include <string>

namespace barrage::testutil {

// A program built by this tree: <build>/bin/<name> (CMAKE_RUNTIME_OUTPUT_DIRECTORY),
// or $BARRAGE_BIN_DIR/<name> when that variable is set (to test installed binaries).
std::string BinaryPath(const std::string& name);

// A file of the source tree, by its path from the repository root
// ("scripts/examples/unary.js").
std::string SourcePath(const std::string& relative);

// An example script or its data: SourcePath("scripts/examples/" + relative).
std::string DataPath(const std::string& relative);

// A fresh, empty directory (mkdtemp under $TMPDIR or /tmp), removed with its
// contents when the test process exits normally. Aborts if none can be made.
std::string TempDir();

}  // namespace barrage::testutil

#endif  // BARRAGE_TESTS_TESTING_PATHS_H_
