// The integration tests' common fixture: a real barrage-target on a free
// loopback port, a temporary directory holding the example protos, and
// helpers to write scripts and run `barrage run`.
#ifndef BARRAGE_TESTS_INTEGRATION_FIXTURE_H_
#define BARRAGE_TESTS_INTEGRATION_FIXTURE_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
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

// A controller (`barrage run --listen 127.0.0.1:0 --expect-agents N`) that
// real barrage-agent processes join over loopback, on top of the target
// (control_plane_test.cc and distributed_test.cc).
class ControllerFixture : public TargetFixture {
 protected:
  // Starts the controller waiting for `agents` remote agents; returns its
  // control address ("127.0.0.1:PORT"), or "" (a failed expectation) when it
  // does not say it listens.
  std::string StartController(std::vector<std::string> args, int agents, const testutil::EnvExtra& env = {}) {
    if (std::find(args.begin(), args.end(), "--agent-timeout") == args.end()) {
      args.insert(args.begin(), {"--agent-timeout", "20s"});
    }
    args.insert(args.begin(), {"run", "--listen", "127.0.0.1:0", "--expect-agents", std::to_string(agents)});
    controller_ = testutil::ChildProcess::Start(testutil::BinaryPath("barrage"), args, env);
    return ListeningAddress();
  }
  // The address of controller_'s "control plane listening on ..." line.
  std::string ListeningAddress() {
    absl::StatusOr<std::string> line = controller_->WaitForLine("control plane listening on ([0-9.:]+)", 30s);
    EXPECT_TRUE(line.ok()) << line.status();
    if (!line.ok()) return "";
    const size_t at = line->find("listening on ") + 13;
    return line->substr(at, line->find_first_of(", ", at) - at);
  }
  // A barrage-agent that joins `controller` as `name` for one test.
  std::unique_ptr<testutil::ChildProcess> StartAgent(const std::string& controller, const std::string& name,
                                                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--controller", controller, "--once", "--name", name};
    args.insert(args.end(), extra.begin(), extra.end());
    return testutil::ChildProcess::Start(testutil::BinaryPath("barrage-agent"), args);
  }
  // A --summary-export file.
  nlohmann::json Export(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

  std::unique_ptr<testutil::ChildProcess> controller_;
};

// Certificates made at run time with the openssl command (never committed),
// in dir: a CA (ca.pem), a server certificate for localhost/127.0.0.1
// (server.pem/.key), a client certificate (client.pem/.key), the client key
// encrypted two ways with password "secret" (client-legacy.key: legacy PEM
// encryption; client-pkcs8.key: encrypted PKCS#8), a server certificate that
// expired in 2020 (expired.pem, same key), and a second CA that signed
// nothing here (other-ca.pem).
inline void MakeCertificates(const std::string& dir) {
  const std::string script = R"(set -e
cd ")" + dir + R"("
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other-ca.pem 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=agent -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem 2>/dev/null
openssl rsa -in client.key -aes128 -traditional -passout pass:secret -out client-legacy.key 2>/dev/null
openssl pkcs8 -topk8 -v2 aes-128-cbc -in client.key -passout pass:secret -out client-pkcs8.key 2>/dev/null
touch index.txt
printf '[ca]\ndefault_ca=d\n[d]\ndir=.\ndatabase=index.txt\nnew_certs_dir=.\nserial=ca.srl\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n' > expired.cnf
openssl ca -batch -config expired.cnf -cert ca.pem -keyfile ca.key -in server.csr -out expired.pem -notext \
  -startdate 20200101000000Z -enddate 20200102000000Z -extfile san.ext 2>/dev/null
)";
  testutil::RunResult r = testutil::Run("/bin/bash", {"-c", script}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
}

}  // namespace barrage::testutil

#endif  // BARRAGE_TESTS_INTEGRATION_FIXTURE_H_
