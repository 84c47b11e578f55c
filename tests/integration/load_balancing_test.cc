// Client-side load balancing for gRPC connections (issue 16 item 2): k6's
// dns option (ttl, select, policy; --dns, K6_DNS) and hosts option, end to
// end against three real barrage-targets on 127.0.0.1, 127.0.0.2 and
// 127.0.0.3 (one port) behind one name. Which target answered each call
// comes from the target itself (header x-served-by), counted by
// scripts/examples/load_balancing.js in its `served` counter.
//
// The name is resolved by the system resolver, so the tests give it a hosts
// file of their own: barrage runs in a user and mount namespace
// (`unshare -rm`, allowed to unprivileged users on Debian 12, and to root)
// with that file bind-mounted over /etc/hosts, and rewrite the file in place
// mid-run. Where namespaces are not allowed the tests that need them skip,
// saying why; the hosts option needs none.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr char kName[] = "backends.test";

class LoadBalancingTest : public testutil::TargetFixture {
 protected:
  void SetUp() override {
    TargetFixture::SetUp();
    std::filesystem::copy_file(testutil::SourcePath("scripts/examples/load_balancing.js"), dir_ + "/lb.js");
    hosts_ = dir_ + "/hosts";
    // Names come from the hosts file only: no DNS query leaves the machine.
    nsswitch_ = Write("nsswitch.conf", "hosts: files\n");
  }

  // Three targets on 127.0.0.1-3, one port; extra flags for each.
  void StartTargets(const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    targets_.push_back(testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), args));
    absl::StatusOr<std::string> first = targets_.back()->WaitForAddress(10s);
    ASSERT_TRUE(first.ok()) << first.status() << targets_.back()->stderr_text();
    port_ = first->substr(first->rfind(':') + 1);
    for (const char* ip : {"127.0.0.2", "127.0.0.3"}) {
      args[1] = absl::StrCat(ip, ":", port_);
      targets_.push_back(testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), args));
      absl::StatusOr<std::string> address = targets_.back()->WaitForAddress(10s);
      ASSERT_TRUE(address.ok()) << address.status() << targets_.back()->stderr_text();
    }
  }
  std::string Backend(int n) const { return absl::StrCat("127.0.0.", n, ":", port_); }
  std::string Target() const { return absl::StrCat(kName, ":", port_); }

  // The hosts file barrage sees: kName for each of these addresses.
  // Written in place: the bind mount holds this file, not the path.
  void WriteHosts(const std::vector<int>& backends) {
    std::string text = "127.0.0.1 localhost\n";
    for (int n : backends) absl::StrAppend(&text, "127.0.0.", n, " ", kName, "\n");
    std::ofstream(hosts_, std::ios::trunc) << text;
  }

  // Whether this machine lets a user and mount namespace see another
  // /etc/hosts; else the reason.
  std::string NamespacesUnavailable() {
    WriteHosts({2});
    testutil::RunResult r = testutil::Run(
        "/usr/bin/unshare", {"-rm", "sh", "-c", std::string(kMounts) + " && getent hosts " + kName, hosts_, nsswitch_},
        10s);
    if (r.exit_code == 0 && r.stdout_text.find("127.0.0.2") != std::string::npos) return "";
    return absl::StrCat("unshare -rm with a bind-mounted /etc/hosts is not allowed here (exit ", r.exit_code, "): ",
                        r.stderr_text);
  }

  // The barrage run command in the namespace, with hosts_ as /etc/hosts.
  std::vector<std::string> InNamespace(std::vector<std::string> run_args) {
    std::vector<std::string> args = {"-rm", "sh", "-c", std::string(kMounts) + " && shift && exec \"$@\"",
                                     hosts_, nsswitch_, testutil::BinaryPath("barrage"), "run", "-q", "--out",
                                     "json=" + dir_ + "/points.json"};
    args.insert(args.end(), run_args.begin(), run_args.end());
    args.push_back(dir_ + "/lb.js");
    return args;
  }
  testutil::RunResult RunInNamespace(std::vector<std::string> run_args) {
    return testutil::Run("/usr/bin/unshare", InNamespace(std::move(run_args)), 60s);
  }

  // The `served` counter from --out json: calls by (phase, backend).
  std::map<std::pair<std::string, std::string>, int> Served() {
    std::map<std::pair<std::string, std::string>, int> out;
    std::ifstream in(dir_ + "/points.json");
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["type"] != "Point" || j["metric"] != "served") continue;
      out[{j["data"]["tags"]["phase"], j["data"]["tags"]["backend"]}]++;  // one point per sample
    }
    return out;
  }

  // sh -c's script: $0 over /etc/hosts, $1 over /etc/nsswitch.conf.
  static constexpr char kMounts[] = "mount --bind \"$0\" /etc/hosts && mount --bind \"$1\" /etc/nsswitch.conf";

  std::vector<std::unique_ptr<testutil::ChildProcess>> targets_;
  std::string port_;
  std::string hosts_;
  std::string nsswitch_;
};

#define SKIP_WITHOUT_NAMESPACES()                                  \
  do {                                                             \
    if (std::string why = NamespacesUnavailable(); !why.empty()) { \
      GTEST_SKIP() << why;                                         \
    }                                                              \
  } while (0)

TEST_F(LoadBalancingTest, RoundRobinSpreadsOneConnectionsCallsOverEveryAddress) {
  SKIP_WITHOUT_NAMESPACES();
  StartTargets();
  WriteHosts({1, 2, 3});
  // The example: 1 VU, one connection, 3,000 calls, select roundRobin.
  testutil::RunResult run = RunInNamespace({"-e", "TARGET=" + Target()});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  auto served = Served();
  for (int n : {1, 2, 3}) {
    // Within 5 % of an even third (gRPC's round_robin takes turns exactly).
    EXPECT_NEAR((served[{"all", Backend(n)}]), 1000, 50) << Backend(n);
  }
}

TEST_F(LoadBalancingTest, FirstSendsEveryCallToOneAddressAndRandomPicksOnePerConnection) {
  SKIP_WITHOUT_NAMESPACES();
  StartTargets();
  WriteHosts({1, 2, 3});
  // --dns over the script's select: roundRobin, as k6's flag precedence.
  testutil::RunResult run = RunInNamespace({"--dns", "select=first", "-e", "TARGET=" + Target(), "-i", "300"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  auto served = Served();
  EXPECT_EQ(served.size(), 1u);
  EXPECT_EQ(served.begin()->second, 300);

  // random: one address per connection. One VU: all its calls on one.
  run = RunInNamespace({"--dns", "select=random,ttl=inf", "-e", "TARGET=" + Target(), "-i", "300"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  served = Served();
  EXPECT_EQ(served.size(), 1u);
  // 30 VUs, 30 connections: every address gets some (all 30 missing one of
  // three: 3 * (2/3)^30, about 1e-5). K6_DNS sets it here.
  std::vector<std::string> args = InNamespace({"-e", "TARGET=" + Target(), "-u", "30", "-i", "600"});
  args.insert(args.begin(), {"K6_DNS=select=random", "/usr/bin/unshare"});
  run = testutil::Run("/usr/bin/env", args, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  served = Served();
  for (int n : {1, 2, 3}) EXPECT_GT((served[{"all", Backend(n)}]), 0) << Backend(n);
}

// ttl 1s: the name is looked up again at most a second after the change, a
// connection checks at most once a second, so 2.5 s after it the new
// addresses are in use. 127.0.0.3 is added, 127.0.0.1 removed (it keeps
// running). With a connection per VU, and with the VUs sharing one.
class LoadBalancingChangeTest : public LoadBalancingTest,
                                public ::testing::WithParamInterface<std::string> {};

TEST_P(LoadBalancingChangeTest, AfterTtlAnAddedTargetGetsCallsAndARemovedOneNone) {
  SKIP_WITHOUT_NAMESPACES();
  StartTargets();
  WriteHosts({1, 2});
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const int64_t change_at = now_ms + 3000, settled_at = change_at + 2500;
  // SHARING=true: the 4 VUs share one channel, which is replaced as a whole.
  auto run = testutil::ChildProcess::Start(
      "/usr/bin/unshare",
      InNamespace({"-e", "TARGET=" + Target(), "-e", "DNS_TTL=1s", "-e", "PACE_MS=2", "-e", "SHARING=" + GetParam(),
                   "-e", absl::StrCat("PHASES=", change_at, ",", settled_at), "--threads", "1", "-u", "4", "-d", "8s"}));
  std::this_thread::sleep_until(std::chrono::system_clock::time_point(std::chrono::milliseconds(change_at)));
  WriteHosts({2, 3});
  ASSERT_EQ(run->Wait(60s), 0) << run->stdout_text() << run->stderr_text();
  auto served = Served();
  EXPECT_GT((served[{"before", Backend(1)}]), 50);
  EXPECT_GT((served[{"before", Backend(2)}]), 50);
  EXPECT_EQ((served[{"before", Backend(3)}]), 0);
  EXPECT_EQ((served[{"after", Backend(1)}]), 0);
  EXPECT_GT((served[{"after", Backend(2)}]), 50);
  EXPECT_GT((served[{"after", Backend(3)}]), 50);
  // No call failed (exit 0 holds grpc_req_failed: rate==0): the calls in
  // flight on the old channel finished there.
  EXPECT_THAT(run->stdout_text(), HasSubstr("grpc_req_failed"));
}

INSTANTIATE_TEST_SUITE_P(OwnOrShared, LoadBalancingChangeTest, ::testing::Values("false", "true"));

TEST_F(LoadBalancingTest, TlsVerifiesTheNameWhileCallsGoToTheAddresses) {
  SKIP_WITHOUT_NAMESPACES();
  // A certificate for the name only: no IP address in it.
  const std::string script = R"(set -e
cd ")" + dir_ + R"("
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lb-ca -keyout ca.key -out ca.pem 2>/dev/null
printf 'subjectAltName=DNS:)" + std::string(kName) + R"(\n' > san.ext
openssl req -newkey rsa:2048 -nodes -subj /CN=)" + std::string(kName) + R"( -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
)";
  testutil::RunResult certs = testutil::Run("/bin/bash", {"-c", script}, 60s);
  ASSERT_EQ(certs.exit_code, 0) << certs.stderr_text;
  StartTargets({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key"});
  WriteHosts({1, 2, 3});
  testutil::RunResult run = RunInNamespace({"-e", "TARGET=" + Target(), "-e", "TLS_CA=" + dir_ + "/ca.pem", "-i", "300"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  auto served = Served();
  for (int n : {1, 2, 3}) EXPECT_NEAR((served[{"all", Backend(n)}]), 100, 5) << Backend(n);
}

TEST_F(LoadBalancingTest, HostsOptionOverridesTheNameWithoutTheResolver) {
  StartTargets();
  // k6's forms: a name, "name:port" (its own port), a wildcard.
  struct Case {
    nlohmann::json hosts;
    int backend;
  };
  const std::vector<Case> cases = {
      {{{kName, "127.0.0.2"}}, 2},
      {{{Target(), "127.0.0.3:" + port_}, {kName, "127.0.0.2:1"}}, 3},
      {{{"*.test", "127.0.0.3"}}, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.hosts.dump());
    Write("config.json", nlohmann::json({{"hosts", c.hosts}}).dump());
    testutil::RunResult run =
        Barrage({"-q", "--config", dir_ + "/config.json", "--out", "json=" + dir_ + "/points.json", "-e",
                 "TARGET=" + Target(), "-i", "30", dir_ + "/lb.js"});
    ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
    auto served = Served();
    EXPECT_EQ((served[{"all", Backend(c.backend)}]), 30);
    EXPECT_EQ(served.size(), 1u);
  }
}

TEST_F(LoadBalancingTest, ANameThatDoesNotResolveFailsTheConnectWithK6sText) {
  SKIP_WITHOUT_NAMESPACES();
  WriteHosts({1});
  testutil::RunResult run = RunInNamespace({"-e", "TARGET=nosuch.test:5000", "-i", "1"});
  EXPECT_THAT(run.stderr_text, HasSubstr("failed to connect to nosuch.test:5000: lookup nosuch.test: no such host"));
  // The name has only an IPv4 address, which onlyIPv6 leaves out.
  run = RunInNamespace({"--dns", "policy=onlyIPv6", "-e", absl::StrCat("TARGET=", kName, ":5000"), "-i", "1"});
  EXPECT_THAT(run.stderr_text, HasSubstr(absl::StrCat("lookup ", kName, ": no such host")));
}

TEST_F(LoadBalancingTest, BadDnsAndHostsValuesAreConfigErrorsNamingThem) {
  struct Case {
    std::string options;  // the script's options object
    std::vector<std::string> flags;
    std::string env;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{ dns: { select: 'bogus' } }", {}, "", "options.dns.select: bogus does not belong to DNSSelect values"},
      {"{ dns: { policy: 'ipv4' } }", {}, "", "options.dns.policy: ipv4 does not belong to DNSPolicy values"},
      {"{ dns: { ttl: 'soon' } }", {}, "", "options.dns.ttl: invalid DNS TTL: soon"},
      {"{ dns: { ttl: '-1s' } }", {}, "", "options.dns.ttl: invalid DNS TTL: -1s"},
      {"{ dns: { ttl: 1000 } }", {}, "", "options.dns.ttl: expected a string, got 1000"},
      {"{ dns: 'roundRobin' }", {}, "", "options.dns: expected an object"},
      {"{ hosts: { 'a b': '127.0.0.1' } }", {}, "", "options.hosts: invalid host pattern 'a b'"},
      {"{ hosts: { 'a.test': 'nowhere' } }", {}, "", "options.hosts.a.test: invalid address 'nowhere'"},
      {"{ hosts: { 'a.test': ['127.0.0.1'] } }", {}, "", "options.hosts.a.test: expected a string"},
      {"{}", {"--dns", "select=rr"}, "", "--dns: rr does not belong to DNSSelect values"},
      {"{}", {"--dns", "ttl"}, "", "--dns: no value for key ttl"},
      {"{}", {"--dns", "ttl=1m,cache=off"}, "", "--dns: unknown DNS configuration field: cache"},
      {"{}", {}, "K6_DNS=policy=v6", "K6_DNS: v6 does not belong to DNSPolicy values"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.options + " " + c.env + (c.flags.empty() ? "" : c.flags[1]));
    Write("bad.js", "export const options = " + c.options + ";\nexport default () => {};\n");
    std::vector<std::string> args = {"run", "-q"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    args.push_back(dir_ + "/bad.js");
    if (!c.env.empty()) args.insert(args.begin(), {c.env, testutil::BinaryPath("barrage")});
    testutil::RunResult run =
        testutil::Run(c.env.empty() ? testutil::BinaryPath("barrage") : "/usr/bin/env", args, 30s);
    EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
    EXPECT_THAT(run.stderr_text, HasSubstr(c.message));
  }
}

// expected_response is k6's tag for HTTP samples; gRPC samples never carry
// it (spec §2.1), whatever the response callback says: the callback's
// judgement shows in grpc_req_failed only.
TEST_F(LoadBalancingTest, GrpcSamplesNeverCarryExpectedResponse) {
  StartTargets({"--error-rate", "1", "--error-status", "5"});  // every call: NotFound
  const std::string script = Write("expected.js", R"(import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { iterations: 1 };
export default () => {
  client.connect(__ENV.OK, { plaintext: true });
  client.invoke('hello.HelloService/SayHello', { greeting: 'a' }, { tags: { name: 'default' } });
  client.invoke('hello.HelloService/SayHello', { greeting: 'a' },
                { tags: { name: 'notfound-expected' }, responseCallback: grpc.expectedStatuses(5) });
  client.invoke('hello.HelloService/SayHello', { greeting: 'a' }, { tags: { name: 'no-callback' }, responseCallback: null });
};
)");
  testutil::RunResult run = Barrage({"-q", "--out", "json=" + dir_ + "/points.json", "-e", "OK=" + Backend(1), script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  std::ifstream in(dir_ + "/points.json");
  // name -> grpc_req_failed's value
  std::map<std::string, double> failed;
  int points = 0;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] != "Point" || !j["data"]["tags"].contains("name")) continue;
    ++points;
    EXPECT_FALSE(j["data"]["tags"].contains("expected_response")) << line;
    if (j["metric"] == "grpc_req_failed") failed[j["data"]["tags"]["name"]] = j["data"]["value"].get<double>();
  }
  // grpc_req_duration and grpc_reqs for each call, grpc_req_failed for the
  // two a callback judges (none with responseCallback: null).
  EXPECT_EQ(points, 8);
  EXPECT_EQ(failed["default"], 1);
  EXPECT_EQ(failed["notfound-expected"], 0);
  EXPECT_FALSE(failed.contains("no-callback"));
}

}  // namespace
}  // namespace barrage
