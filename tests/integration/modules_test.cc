// What scripts load and how they find it, end to end with the real
// binaries: k6's path rules for protos, open() and imports (a script in a
// sub-folder reaching everything through "../"), the same test from an
// archive with the originals gone (embedded and on agents), handleSummary's
// files, k6/encoding, k6/crypto and k6/data in a run, and remote modules
// from an HTTPS server this test starts on loopback (its certificates made
// here with openssl), with a 404, a refused connection, an untrusted
// certificate, a cache folder and an archive run with the server gone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// passes and fails of the `checks` metric in a --summary-export file.
std::pair<int, int> Checks(const std::string& export_path) {
  std::ifstream in(export_path);
  if (!in) return {-1, -1};
  nlohmann::json summary = nlohmann::json::parse(in, nullptr, false);
  if (!summary.is_object() || !summary["metrics"].contains("checks")) return {-1, -1};
  return {summary["metrics"]["checks"].value("passes", -1), summary["metrics"]["checks"].value("fails", -1)};
}

// What barrage printed, its logfmt quoting undone (\" -> ", \n -> newline).
std::string Log(const testutil::RunResult& run) {
  return absl::StrReplaceAll(run.stdout_text + run.stderr_text, {{"\\\"", "\""}, {"\\n", "\n"}, {"\\t", "\t"}});
}

std::vector<std::string> TarNames(const std::string& tar) {
  testutil::RunResult list = testutil::Run("/bin/tar", {"-tf", tar}, 30s);
  std::vector<std::string> names;
  std::istringstream lines(list.stdout_text);
  for (std::string line; std::getline(lines, line);) names.push_back(line);
  return names;
}

class ModulesRunTest : public testutil::TargetFixture {
 protected:
  // `barrage <args>` (not only run), from the fixture's directory or cwd.
  testutil::RunResult BarrageIn(const std::string& cwd, const std::vector<std::string>& args,
                                const testutil::EnvExtra& env = {}, std::chrono::seconds timeout = 60s) {
    std::string command = "cd '" + cwd + "' && exec '" + testutil::BinaryPath("barrage") + "'";
    for (const std::string& a : args) command += " '" + a + "'";
    return testutil::Run("/bin/bash", {"-c", command}, timeout, env);
  }
};

// ------------------------------------------------------------------ paths

// The layout most real suites have: protos beside the tests, a script two
// folders down, a helper module and a token file reached through "..".
constexpr char kPathsScript[] = R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { token, fromHelper } from '../lib//helpers.js';
import { twice } from './sub/../../lib/./math.js';

// Each load() form k6 accepts, all naming the same file.
const a = new grpc.Client();
a.load(['../../protos'], 'hello/hello.proto');
const b = new grpc.Client();
b.load(['./../../protos//hello'], './hello.proto');
const c = new grpc.Client();
c.load([], 'whatever/../../../protos/hello/hello.proto');
const d = new grpc.Client();
d.load(['file://' + __ENV.ROOT + '/protos/x/../hello'], 'hello.proto');
const e = new grpc.Client();
e.load(['/'], __ENV.ROOT + '/protos//hello/hello.proto');
const raw = open('./../data//token.txt');

export default () => {
  const clients = [a, b, c, d, e];
  for (let i = 0; i < clients.length; i++) {
    clients[i].connect(__ENV.TARGET, { plaintext: true });
    const r = clients[i].invoke('hello.HelloService/SayHello', { greeting: token });
    check(r, { ['client ' + i + ' says hello to the token']: (x) => x.status === grpc.StatusOK && x.message.reply === 'hello tok-123' });
    clients[i].close();
  }
  check(null, {
    'open() keeps the trailing newline': () => raw === 'tok-123\n',
    "helpers open relative to their own folder": () => fromHelper === 'tok-123\n',
    'nested import': () => twice(2) === 4,
  });
};
)";

class PathsTest : public ModulesRunTest {
 protected:
  void SetUp() override {
    ModulesRunTest::SetUp();
    root_ = dir_ + "/suite";
    WriteFile(root_ + "/protos/hello/hello.proto", ReadFile(dir_ + "/definitions/hello.proto"));
    WriteFile(root_ + "/tests/data/token.txt", "tok-123\n");
    WriteFile(root_ + "/tests/lib/helpers.js",
              "export const fromHelper = open('../data/token.txt');\nexport const token = fromHelper.trim();\n");
    WriteFile(root_ + "/tests/lib/math.js", "export const twice = (x) => x * 2;\n");
    WriteFile(root_ + "/tests/load/script.js", kPathsScript);
  }
  std::string root_;
};

TEST_F(PathsTest, ScriptInASubFolderReachesProtosFilesAndModulesThroughDotDot) {
  const std::string summary = dir_ + "/summary.json";
  // Run from the suite's root, the script named by a relative path.
  testutil::RunResult run = BarrageIn(root_, {"run", "-q", "-i", "2", "-e", "TARGET=" + address_, "-e",
                                              "ROOT=" + root_, "--summary-export", summary, "tests/load/script.js"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("BARRAGE_CHECK")));
  EXPECT_EQ(Checks(summary), std::make_pair(16, 0)) << run.stdout_text;
}

TEST_F(PathsTest, ArchiveStoresCleanPathsAndRunsWithTheOriginalsGone) {
  const std::string tar = dir_ + "/test.tar";
  testutil::RunResult archive =
      BarrageIn(root_, {"archive", "tests/load/script.js", "-e", "ROOT=" + root_, "-o", tar});
  ASSERT_EQ(archive.exit_code, 0) << archive.stderr_text;
  std::vector<std::string> names = TarNames(tar);
  const std::string r = root_.substr(1);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "metadata.json", "modules/" + r + "/tests/load/script.js",
                         "modules/" + r + "/tests/lib/helpers.js", "modules/" + r + "/tests/lib/math.js",
                         "files/" + r + "/protos/hello/hello.proto", "files/" + r + "/tests/data/token.txt",
                         // the user's lines of each module Babel wrote
                         "lines/" + r + "/tests/load/script.js", "lines/" + r + "/tests/lib/helpers.js",
                         "lines/" + r + "/tests/lib/math.js"));
  // Nothing on disk any more: everything comes from the archive, with the
  // paths resolved as in the first pass.
  std::filesystem::rename(root_, dir_ + "/gone");
  const std::string summary = dir_ + "/summary.json";
  testutil::RunResult run =
      Barrage({"-q", "-i", "2", "-e", "TARGET=" + address_, "--summary-export", summary, tar});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(16, 0));
  // And on two barrage-agent processes.
  std::filesystem::remove(summary);
  run = Barrage({"-q", "--agents", "2", "-i", "4", "-e", "TARGET=" + address_, "--summary-export", summary, tar});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(32, 0));
}

TEST_F(PathsTest, ProtoPathErrorsReadAsK6s) {
  struct Case {
    std::string load;
    std::string want;
  };
  const std::string protos = root_ + "/protos";
  for (const Case& c : std::vector<Case>{
           // k6's LoadNotFound text.
           {"load([], './does_not_exist.proto')",
            "could not resolve path \"./does_not_exist.proto\": stat " + root_ + "/tests/load/does_not_exist.proto: "
            "no such file or directory"},
           {"load(['../../protos'], 'nope.proto')", "stat " + protos + "/nope.proto: no such file or directory"},
           // An absolute name is joined onto the import path, as in k6.
           {"load(['" + protos + "/hello'], '" + protos + "/hello/hello.proto')",
            "stat " + protos + "/hello" + protos + "/hello/hello.proto: no such file or directory"},
           {"loadProtoset('../../protos/none.protoset')",
            "couldn't open protoset: stat " + protos + "/none.protoset: no such file or directory"},
           {"loadProtoset('../../protos')", "couldn't read protoset: read " + protos + ": is a directory"},
       }) {
    WriteFile(root_ + "/tests/load/bad.js",
              "import grpc from 'k6/net/grpc';\nconst c = new grpc.Client();\nc." + c.load +
                  ";\nexport default () => {};\n");
    testutil::RunResult run = BarrageIn(root_, {"run", "-q", "-i", "1", "tests/load/bad.js"});
    EXPECT_EQ(run.exit_code, 107) << c.load << "\n" << run.stderr_text;
    EXPECT_THAT(Log(run), HasSubstr(c.want)) << c.load;
  }
}

TEST_F(PathsTest, InputThatOnceAbortedIsAScriptError) {
  // Each of these reached BARRAGE_CHECK (SIGABRT, exit 134) or named
  // another file than the script did.
  for (const auto& [script, want] : std::vector<std::pair<std::string, std::string>>{
           {"const x = open('../data/token.txt\\u0000.js');", "holds a NUL character"},
           {"import x from './a\\u0000.js';", "holds a NUL character"},
           {"import grpc from 'k6/net/grpc';\nnew grpc.Client().load(['../../protos'], 'hello/hello.proto\\u0000');",
            "holds a NUL character"},
           {"import x from 'http://127.0.0.1:1/x.js';",
            "only supported schemes for imports are file and https, http://127.0.0.1:1/x.js has `http`"},
           {"import x from 'github.com/grafana/k6/x.js';", "github.com 'special' urls are no longer supported"},
           {"import x from '../lib/missing.js';",
            "The moduleSpecifier \"../lib/missing.js\" couldn't be found on local disk."},
       }) {
    WriteFile(root_ + "/tests/load/bad.js", script + "\nexport default () => {};\n");
    testutil::RunResult run = BarrageIn(root_, {"run", "-q", "-i", "1", "tests/load/bad.js"});
    EXPECT_EQ(run.exit_code, 107) << script << "\n" << run.stderr_text;
    EXPECT_THAT(Log(run), HasSubstr(want)) << script;
    EXPECT_THAT(run.stderr_text, Not(HasSubstr("BARRAGE_CHECK"))) << script;
  }
}

TEST_F(PathsTest, HandleSummaryFilesAreRelativeToTheCurrentFolder) {
  WriteFile(root_ + "/tests/load/summary.js", R"(
export default () => {};
export function handleSummary() {
  return { 'out/../report.txt': 'written', 'no-such-folder/x.json': 'lost', 'nul\u0000.txt': 'refused',
           stdout: 'to stdout\n' };
}
)");
  std::filesystem::create_directories(root_ + "/run/out");
  testutil::RunResult run = BarrageIn(root_ + "/run", {"run", "-q", "-i", "1", "../tests/load/summary.js"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  // As in k6: relative to where barrage runs, not to the script.
  EXPECT_EQ(ReadFile(root_ + "/run/report.txt"), "written");
  EXPECT_FALSE(std::filesystem::exists(root_ + "/tests/load/report.txt"));
  EXPECT_THAT(run.stdout_text, HasSubstr("to stdout"));
  EXPECT_THAT(Log(run), HasSubstr("handleSummary(): cannot write no-such-folder/x.json"));
  // Not "nul" with the rest cut off at the NUL.
  EXPECT_THAT(Log(run), HasSubstr("the path holds a NUL character"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/run/nul"));
}

// ------------------------------------------------------------------ modules

TEST_F(ModulesRunTest, EncodingCryptoAndSharedArrayOnAgents) {
  Write("users.json", R"([{"name":"ann"},{"name":"bob"},{"name":"cy"}])");
  const std::string script = Write("modules.js", R"(
import { check } from 'k6';
import encoding from 'k6/encoding';
import { sha256, hmac, createHash, randomBytes } from 'k6/crypto';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';
const users = new SharedArray('users', function () {
  console.log('building users');
  return JSON.parse(open('./users.json'));
});
export default () => {
  const user = users[exec.scenario.iterationInTest % users.length];
  const h = createHash('sha1');
  h.update(user.name);
  check(user, {
    'b64 round trip': (u) => encoding.b64decode(encoding.b64encode(u.name, 'rawurl'), 'rawurl', 's') === u.name,
    'sha256': () => sha256('hello world', 'hex') === 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9',
    'hmac': () => hmac('sha256', 'a secret', 'some data to hash', 'hex') === '7fd04df92f636fd450bc841c9418e5825c17f33ad9c87c518115a45971f7f77e',
    'createHash': () => h.digest('hex').length === 40,
    'randomBytes': () => randomBytes(16).byteLength === 16,
    'shared array': (u) => users.length === 3 && typeof u.name === 'string' && Object.isFrozen(u),
  });
};
)");
  const std::string summary = dir_ + "/summary.json";
  testutil::RunResult run =
      Barrage({"-q", "--agents", "2", "-u", "4", "-i", "12", "--summary-export", summary, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(72, 0));
  // Built once per process: the controller's init pass and each agent.
  size_t builds = 0;
  for (size_t at = run.stderr_text.find("building users"); at != std::string::npos;
       at = run.stderr_text.find("building users", at + 1)) {
    ++builds;
  }
  EXPECT_EQ(builds, 3u) << run.stderr_text;
}

// ------------------------------------------------------------------ remote modules

// A static HTTPS server over a folder (Python's http.server wrapped in TLS),
// printing its address and each request path.
constexpr char kHttpsServer[] = R"(
import functools, http.server, ssl, sys
root, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("GET " + self.path + "\n")
        sys.stderr.flush()
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
)";

class RemoteModulesTest : public ModulesRunTest {
 protected:
  void SetUp() override {
    ModulesRunTest::SetUp();
    certs_ = dir_ + "/certs";
    std::filesystem::create_directories(certs_);
    testutil::MakeCertificates(certs_);
    // A jslib-like package: an index importing its neighbours relatively.
    WriteFile(dir_ + "/www/k6-utils/1.4.0/index.js",
              "import { hex } from './lib/hex.js';\nimport { tag } from '../../shared/tag.js';\n"
              "export function uuidv4() { return tag + hex(8) + '-4000-8000-000000000000'; }\n");
    WriteFile(dir_ + "/www/k6-utils/1.4.0/lib/hex.js",
              "export const hex = (n) => { let s = ''; while (s.length < n) s += 'a'; return s; };\n");
    WriteFile(dir_ + "/www/shared/tag.js", "export const tag = '';\n");
    Write("www.py", kHttpsServer);
    StartServer();
    Write("remote.js", "import { check } from 'k6';\nimport { uuidv4 } from '" + Url("/k6-utils/1.4.0/index.js") +
                           "';\nexport default () => { check(uuidv4(), { 'uuid from a remote module': "
                           "(u) => /^[a-f0-9]{8}-4000-8000-0{12}$/.test(u) }); };\n");
  }
  void StartServer() {
    server_ = testutil::ChildProcess::Start("/usr/bin/python3", {dir_ + "/www.py", dir_ + "/www",
                                                                 certs_ + "/server.pem", certs_ + "/server.key"});
    absl::StatusOr<std::string> address = server_->WaitForAddress(20s);
    ASSERT_TRUE(address.ok()) << address.status() << server_->stderr_text();
    server_address_ = *address;
  }
  void StopServer() {
    server_.reset();  // SIGTERM, then SIGKILL: the port is closed
  }
  std::string Url(const std::string& path) const { return "https://" + server_address_ + path; }
  // barrage trusting the test's CA, as the README tells users to.
  testutil::EnvExtra TrustCa() const { return {{"SSL_CERT_FILE", certs_ + "/ca.pem"}}; }

  std::string certs_;
  std::unique_ptr<testutil::ChildProcess> server_;
  std::string server_address_;
};

TEST_F(RemoteModulesTest, FetchedOnceAtInitThenRunFromTheArchiveWithTheServerGone) {
  const std::string summary = dir_ + "/summary.json";
  testutil::RunResult run =
      testutil::Run(testutil::BinaryPath("barrage"),
                    {"run", "-q", "-i", "3", "--summary-export", summary, dir_ + "/remote.js"}, 60s, TrustCa());
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(3, 0));
  // k6's loader asks with "_k6=1" first; modules relative to a remote one
  // come from the same server.
  EXPECT_THAT(server_->stderr_text(), HasSubstr("GET /k6-utils/1.4.0/index.js?_k6=1"));
  EXPECT_THAT(server_->stderr_text(), HasSubstr("GET /k6-utils/1.4.0/lib/hex.js?_k6=1"));
  EXPECT_THAT(server_->stderr_text(), HasSubstr("GET /shared/tag.js?_k6=1"));

  const std::string tar = dir_ + "/remote.tar";
  testutil::RunResult archive = testutil::Run(testutil::BinaryPath("barrage"),
                                              {"archive", dir_ + "/remote.js", "-o", tar}, 60s, TrustCa());
  ASSERT_EQ(archive.exit_code, 0) << archive.stderr_text;
  EXPECT_THAT(TarNames(tar), ::testing::IsSupersetOf({"https/" + server_address_ + "/k6-utils/1.4.0/index.js",
                                                      "https/" + server_address_ + "/k6-utils/1.4.0/lib/hex.js",
                                                      "https/" + server_address_ + "/shared/tag.js"}));
  StopServer();
  // Nothing is fetched again: embedded, and on an agent.
  std::filesystem::remove(summary);
  run = Barrage({"-q", "-i", "2", "--summary-export", summary, tar});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(2, 0));
  std::filesystem::remove(summary);
  run = Barrage({"-q", "--agents", "1", "-i", "2", "--summary-export", summary, tar});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(2, 0));
}

TEST_F(RemoteModulesTest, UnreachableModulesNameTheUrlAndTheReason) {
  struct Case {
    std::string name;
    std::string url;
    testutil::EnvExtra env;
    std::string want;
  };
  const std::string missing = Url("/k6-utils/9.9.9/index.js");
  std::vector<Case> cases = {
      {"404", missing, TrustCa(), "Error : \"not found: " + missing + "\""},
      // Trusting another CA: the server's certificate does not verify.
      {"untrusted certificate", Url("/k6-utils/1.4.0/index.js"), {{"SSL_CERT_FILE", certs_ + "/other-ca.pem"}},
       "SSL certificate problem"},
  };
  for (const Case& c : cases) {
    Write("bad.js", "import { uuidv4 } from '" + c.url + "';\nexport default () => {};\n");
    testutil::RunResult run = testutil::Run(testutil::BinaryPath("barrage"), {"run", "-q", "-i", "1", dir_ + "/bad.js"},
                                            60s, c.env);
    EXPECT_EQ(run.exit_code, 107) << c.name << "\n" << run.stderr_text;
    EXPECT_THAT(Log(run), HasSubstr("The moduleSpecifier \"" + c.url +
                                           "\" couldn't be retrieved from the resolved url \"" + c.url + "\""))
        << c.name;
    EXPECT_THAT(Log(run), HasSubstr(c.want)) << c.name;
  }
  StopServer();
  Write("bad.js", "import { uuidv4 } from '" + Url("/k6-utils/1.4.0/index.js") + "';\nexport default () => {};\n");
  testutil::RunResult run =
      testutil::Run(testutil::BinaryPath("barrage"), {"run", "-q", "-i", "1", dir_ + "/bad.js"}, 60s, TrustCa());
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
  EXPECT_THAT(Log(run), HasSubstr("Error : \"Get \"" + Url("/k6-utils/1.4.0/index.js")));
  EXPECT_THAT(Log(run), HasSubstr("Couldn't connect to server"));
}

TEST_F(RemoteModulesTest, ModuleCacheRunsOfflineOnceFilled) {
  const std::string cache = dir_ + "/module-cache";
  testutil::RunResult run = testutil::Run(testutil::BinaryPath("barrage"),
                                          {"run", "-q", "-i", "1", "--module-cache", cache, dir_ + "/remote.js"}, 60s,
                                          TrustCa());
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  // k6's archive layout: https/<host:port>/<path>.
  EXPECT_TRUE(std::filesystem::exists(cache + "/https/" + server_address_ + "/k6-utils/1.4.0/index.js"));
  EXPECT_TRUE(std::filesystem::exists(cache + "/https/" + server_address_ + "/shared/tag.js"));
  StopServer();
  // No server, no CA: the folder alone, named by the flag or the variable.
  const std::string summary = dir_ + "/summary.json";
  run = Barrage({"-q", "-i", "1", "--module-cache", cache, "--summary-export", summary, dir_ + "/remote.js"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Checks(summary), std::make_pair(1, 0));
  run = testutil::Run(testutil::BinaryPath("barrage"), {"run", "-q", "-i", "1", dir_ + "/remote.js"}, 60s,
                      {{"BARRAGE_MODULE_CACHE", cache}});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  // Without it the network is needed, and it is gone.
  run = Barrage({"-q", "-i", "1", dir_ + "/remote.js"});
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
}

}  // namespace
}  // namespace barrage
