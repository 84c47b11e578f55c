// File readers for the registry tests: the disk under testdata/, recording
// what was asked, and an in-memory one.
#ifndef BARRAGE_TESTS_AGENT_GRPC_TEST_READER_H_
#define BARRAGE_TESTS_AGENT_GRPC_TEST_READER_H_

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "agent/grpc/proto_registry.h"

namespace barrage::agent::grpc_client {

inline std::string TestData(const std::string& rel = "") {
  return rel.empty() ? std::string(BARRAGE_GRPC_TESTDATA) : absl::StrCat(BARRAGE_GRPC_TESTDATA, "/", rel);
}

inline absl::StatusOr<std::string> ReadDisk(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  // The runtime's reader says why as k6 does.
  if (!in) return absl::NotFoundError(absl::StrCat("stat ", path, ": no such file or directory"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads the disk and remembers every path it was asked for.
struct RecordingReader {
  std::shared_ptr<std::vector<std::string>> asked = std::make_shared<std::vector<std::string>>();
  ProtoRegistry::FileReader reader() const {
    auto log = asked;
    return [log](const std::string& path) {
      log->push_back(path);
      return ReadDisk(path);
    };
  }
};

inline ProtoRegistry::FileReader MemoryReader(std::map<std::string, std::string> files) {
  return [files = std::move(files)](const std::string& path) -> absl::StatusOr<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return absl::NotFoundError(absl::StrCat("stat ", path, ": no such file or directory"));
    return it->second;
  };
}

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_TESTS_AGENT_GRPC_TEST_READER_H_
