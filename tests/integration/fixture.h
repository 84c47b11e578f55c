// The integration tests' common fixture: a real barrage-target on a free
// loopback port, a temporary directory holding the example protos, and
// helpers to write scripts and run `barrage run`.
#ifndef BARRAGE_TESTS_INTEGRATION_FIXTURE_H_
#define BARRAGE_TESTS_INTEGRATION_FIXTURE_H_

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage::testutil {

using namespace std::chrono_literals;

class TargetFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), {"--listen", "127.0.0.1:0"});
    absl::StatusOr<std::string> address = target_->WaitForAddress(10s);
    ASSERT_TRUE(address.ok()) << address.status();
    address_ = *address;
    dir_ = testutil::TempDir();
    std::filesystem::create_directories(dir_ + "/definitions");
    std::filesystem::copy_file(testutil::SourcePath("scripts/examples/definitions/hello.proto"),
                               dir_ + "/definitions/hello.proto");
    Write("broken.proto", "syntax = \"proto3\";\nmessage A {\n  strin x = 1;\n}\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  testutil::RunResult Barrage(std::vector<std::string> args, std::chrono::seconds timeout = 60s) {
    args.insert(args.begin(), "run");
    return testutil::Run(testutil::BinaryPath("barrage"), args, timeout);
  }

  std::unique_ptr<testutil::ChildProcess> target_;
  std::string address_;
  std::string dir_;
};

}  // namespace barrage::testutil

#endif  // BARRAGE_TESTS_INTEGRATION_FIXTURE_H_
