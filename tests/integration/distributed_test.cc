// Distributed runs end to end: a real controller (`barrage run`), real
// barrage-agent processes and barrage-target, all on loopback, each run
// bounded in time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class DistributedTest : public testutil::ControllerFixture {};

const char kSayHello[] = R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import exec from 'k6/execution';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = __OPTIONS__;
export default () => {
  if (exec.vu.iterationInScenario === 0) {
    client.connect(__ENV.TARGET, { plaintext: true });
    console.log(`VU ${exec.vu.idInTest} connected`);
  }
  const r = client.invoke('hello.HelloService/SayHello', { greeting: 'split' });
  check(r, { 'ok': (x) => x.status === grpc.StatusOK });
};
)";

std::string Script(const std::string& options) {
  std::string s = kSayHello;
  s.replace(s.find("__OPTIONS__"), 11, options);
  return s;
}

TEST_F(DistributedTest, SharedIterationsOverThreeAgentsAreExact) {
  const std::string script =
      Write("split.js", Script("{ scenarios: { pool: { executor: 'shared-iterations', vus: 6, iterations: 30000 } } }"));
  const std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run = Barrage({"--agents", "3", "-e", "TARGET=" + address_, "--summary-trend-stats",
                                     "count,p(95)", "--summary-export", export_path, script},
                                    120s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("execution: distributed over 3 agents"));
  nlohmann::json summary = Export(export_path);
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 30000);
  EXPECT_EQ(summary["metrics"]["grpc_req_duration"]["count"].get<int>(), 30000);
  EXPECT_EQ(summary["metrics"]["checks"]["passes"].get<int>(), 30000);
  EXPECT_EQ(summary["metrics"]["vus_max"]["value"].get<int>(), 6);
  ASSERT_EQ(summary["agents"].size(), 3u);
  int per_agent = 0;
  for (const auto& a : summary["agents"]) {
    EXPECT_EQ(a["state"], "done");
    EXPECT_EQ(a["vus"], 2);
    per_agent += a["iterations_completed"].get<int>();
  }
  EXPECT_EQ(per_agent, 30000);
  // Console output reaches the controller, named by agent.
  EXPECT_THAT(run.stderr_text, HasSubstr("agent=agent-1"));
  EXPECT_THAT(run.stderr_text, HasSubstr("agent=agent-3"));
  EXPECT_THAT(run.stderr_text, HasSubstr("VU 6 connected"));
}

// k6's percentile: linear interpolation between the closest ranks.
double ExactPercentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double rank = p / 100 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

TEST_F(DistributedTest, MergedQuantilesAgreeForOneAndFourAgentsAndWithTheRawSamples) {
  // A deterministic latency-like distribution: the value of global
  // iteration k, the same whichever agent runs it.
  const std::string script = Write("quantiles.js", R"(
import { Trend } from 'k6/metrics';
import exec from 'k6/execution';
const latency = new Trend('synthetic_latency', true);
export const options = { scenarios: { q: { executor: 'shared-iterations', vus: 8, iterations: 20000 } } };
export default () => {
  const k = exec.scenario.iterationInTest;
  latency.add(1 + ((k * 7919) % 10007) / 100 + Math.pow((k * 104729) % 1000, 2) / 5000);
};
)");
  std::vector<double> raw;
  for (int64_t k = 0; k < 20000; ++k) {
    raw.push_back(1 + static_cast<double>((k * 7919) % 10007) / 100 + std::pow(static_cast<double>((k * 104729) % 1000), 2) / 5000);
  }
  std::map<std::string, nlohmann::json> runs;
  for (const std::string agents : {"1", "4"}) {
    const std::string export_path = dir_ + "/q" + agents + ".json";
    std::vector<std::string> args = {"--summary-trend-stats", "count,min,max,p(50),p(90),p(95),p(99)",
                                     "--summary-export", export_path, script};
    if (agents != "1") args.insert(args.begin(), {"--agents", agents});
    testutil::RunResult run = Barrage(args, 120s);
    ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
    runs[agents] = Export(export_path)["metrics"]["synthetic_latency"];
  }
  for (const char* stat : {"p(50)", "p(90)", "p(95)", "p(99)"}) {
    const double one = runs["1"][stat].get<double>();
    const double four = runs["4"][stat].get<double>();
    const double p = std::stod(std::string(stat).substr(2));
    const double exact = ExactPercentile(raw, p);
    EXPECT_NEAR(four, one, one * 0.01) << stat;
    EXPECT_NEAR(one, exact, exact * 0.01) << stat;
    EXPECT_NEAR(four, exact, exact * 0.01) << stat;
  }
  EXPECT_EQ(runs["4"]["count"].get<int>(), 20000);
  EXPECT_DOUBLE_EQ(runs["4"]["min"].get<double>(), *std::min_element(raw.begin(), raw.end()));
  EXPECT_DOUBLE_EQ(runs["4"]["max"].get<double>(), *std::max_element(raw.begin(), raw.end()));
}

TEST_F(DistributedTest, AbortOnFailOnMergedDataStopsEveryAgent) {
  const std::string script = Write("abort.js", Script(R"({
    scenarios: { steady: { executor: 'constant-vus', vus: 4, duration: '60s' } },
    thresholds: { grpc_req_duration: [{ threshold: 'max<0', abortOnFail: true }] } })"));
  const std::string export_path = dir_ + "/summary.json";
  const auto begin = std::chrono::steady_clock::now();
  testutil::RunResult run = Barrage({"--agents", "2", "-e", "TARGET=" + address_, "--summary-export", export_path, script}, 60s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("stopping test prematurely"));
  // Evaluated every 2 s; both agents stop within two intervals of that.
  EXPECT_LT(seconds, 15) << run.stderr_text;
  const nlohmann::json summary = Export(export_path);
  for (const auto& a : summary["agents"]) EXPECT_EQ(a["state"], "done");
}

TEST_F(DistributedTest, AKilledAgentEndsTheRunWithItsCodeAndThePartialResult) {
  const std::string script = Write("long.js", Script(
      "{ scenarios: { steady: { executor: 'constant-vus', vus: 3, duration: '30s', gracefulStop: '1s' } } }"));
  const std::string export_path = dir_ + "/summary.json";
  const std::string address = StartController({"-e", "TARGET=" + address_, "--summary-export", export_path, script}, 3);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  auto a2 = StartAgent(address, "a-2");
  auto a3 = StartAgent(address, "a-3");
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  std::this_thread::sleep_for(2s);
  a2->Signal(SIGKILL);
  const int code = controller_->Wait(20s);
  EXPECT_EQ(code, 111) << controller_->stderr_text();
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("agent a-2 (at "));
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("was lost; the metrics it sent are kept"));
  // The others stop and exit.
  EXPECT_EQ(a1->Wait(15s), 0) << a1->stderr_text();
  EXPECT_EQ(a3->Wait(15s), 0) << a3->stderr_text();
  nlohmann::json summary = Export(export_path);
  EXPECT_GT(summary["metrics"]["iterations"]["count"].get<int>(), 100);
  bool lost_listed = false;
  for (const auto& a : summary["agents"]) lost_listed |= a["name"] == "a-2" && a["state"] == "lost";
  EXPECT_TRUE(lost_listed) << summary["agents"].dump();
}

TEST_F(DistributedTest, OnAgentLossContinueKeepsTheOthersGoing) {
  const std::string script = Write("long.js", Script(
      "{ scenarios: { steady: { executor: 'constant-vus', vus: 2, duration: '5s', gracefulStop: '1s' } } }"));
  const std::string address =
      StartController({"--on-agent-loss", "continue", "-e", "TARGET=" + address_, script}, 2);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  auto a2 = StartAgent(address, "a-2");
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  const auto lost_at = std::chrono::steady_clock::now();
  a2->Signal(SIGKILL);
  // The survivor runs its scenario to the end; the run still reports the loss.
  EXPECT_EQ(controller_->Wait(30s), 111) << controller_->stderr_text();
  EXPECT_EQ(a1->Wait(10s), 0);
  EXPECT_GT(std::chrono::duration<double>(std::chrono::steady_clock::now() - lost_at).count(), 0.5);
  EXPECT_THAT(controller_->stdout_text(), HasSubstr("1/2 agents"));
}

TEST_F(DistributedTest, CtrlCStopsEveryAgentGracefully) {
  const std::string script = Write("long.js", Script(
      "{ scenarios: { steady: { executor: 'constant-vus', vus: 2, duration: '60s' } } }"));
  const std::string address = StartController({"-e", "TARGET=" + address_, script}, 2);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  auto a2 = StartAgent(address, "a-2");
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  controller_->Signal(SIGINT);
  EXPECT_EQ(controller_->Wait(20s), 105) << controller_->stderr_text();
  EXPECT_THAT(controller_->stdout_text(), HasSubstr("TOTAL RESULTS"));
  EXPECT_EQ(a1->Wait(10s), 0);
  EXPECT_EQ(a2->Wait(10s), 0);
}

TEST_F(DistributedTest, CtrlCWhileWaitingForAgentsEndsAtOnce) {
  const std::string script = Write("t.js", Script("{ iterations: 1 }"));
  const std::string address = StartController({"-e", "TARGET=" + address_, script}, 2);
  ASSERT_FALSE(address.empty());
  controller_->Signal(SIGINT);
  EXPECT_EQ(controller_->Wait(5s), 105) << controller_->stderr_text();
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("stopped while waiting for agents"));
}

TEST_F(DistributedTest, AnAgentTheTestDoesNotNeedIsTurnedAwayAsRetryable) {
  const std::string script = Write("long.js", Script(
      "{ scenarios: { steady: { executor: 'constant-vus', vus: 1, duration: '3s' } } }"));
  const std::string address = StartController({"-e", "TARGET=" + address_, script}, 1);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  ASSERT_TRUE(controller_->WaitForLine("agent a-1 joined", 20s).ok()) << controller_->stderr_text();
  auto extra = StartAgent(address, "extra");
  EXPECT_EQ(extra->Wait(10s), 3);  // --once: nothing to wait for
  EXPECT_THAT(extra->stderr_text(), HasSubstr("the controller refused this agent: the test already has its 1 agents"));
  EXPECT_EQ(controller_->Wait(30s), 0) << controller_->stderr_text();
  EXPECT_EQ(a1->Wait(10s), 0);
}

TEST_F(DistributedTest, StopWakesAnArrivalRateDispatcherWaitingForItsNextStart) {
  // One iteration a minute: the dispatcher waits ~60 s for the second one;
  // Ctrl-C must end the run at once, not at the next arrival.
  const std::string script = Write("slow.js", R"(
export const options = { scenarios: { slow: { executor: 'constant-arrival-rate', rate: 1, timeUnit: '1m',
  duration: '10m', preAllocatedVUs: 1 } } };
export default () => {};
)");
  controller_ = testutil::ChildProcess::Start(testutil::BinaryPath("barrage"), {"run", script});
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  const auto stopped_at = std::chrono::steady_clock::now();
  controller_->Signal(SIGINT);
  EXPECT_EQ(controller_->Wait(20s), 105) << controller_->stderr_text();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count(), 5);
}

TEST_F(DistributedTest, AKilledControllerStopsEveryAgentsLoad) {
  const std::string script = Write("long.js", Script(
      "{ scenarios: { steady: { executor: 'constant-vus', vus: 2, duration: '60s', gracefulStop: '2s' } } }"));
  const std::string address = StartController({"-e", "TARGET=" + address_, script}, 2);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  auto a2 = StartAgent(address, "a-2");
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  controller_->Signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  // gracefulStop (2 s) + 5 s: the agents have stopped their VUs and exited.
  EXPECT_EQ(a1->Wait(7s), 4) << a1->stderr_text();
  EXPECT_EQ(a2->Wait(7s), 4) << a2->stderr_text();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count(), 7.5);
  EXPECT_THAT(a1->stderr_text(), HasSubstr("lost the controller"));
}

TEST_F(DistributedTest, WrongTokenIsRefusedOnBothSides) {
  const std::string script = Write("t.js", Script("{ iterations: 1 }"));
  const std::string good = Write("good.token", "s3cret-token\n");
  const std::string bad = Write("bad.token", "guess\n");
  const std::string address =
      StartController({"--token-file", good, "--agent-timeout", "4s", "-e", "TARGET=" + address_, script}, 1);
  ASSERT_FALSE(address.empty());
  auto agent = StartAgent(address, "intruder", {"--token-file", bad});
  EXPECT_EQ(agent->Wait(15s), 3);
  EXPECT_THAT(agent->stderr_text(), HasSubstr("the controller refused this agent: wrong or missing token"));
  EXPECT_EQ(controller_->Wait(15s), 111);
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("refused agent 'intruder'"));
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("only 0 of 1 agents joined within 4s"));
}

TEST_F(DistributedTest, ProtocolVersionMismatchIsRefusedOnBothSides) {
  const std::string script = Write("t.js", Script("{ iterations: 1 }"));
  const std::string address = StartController({"--agent-timeout", "4s", "-e", "TARGET=" + address_, script}, 1);
  ASSERT_FALSE(address.empty());
  auto agent = StartAgent(address, "old", {"--protocol-version", "7"});
  EXPECT_EQ(agent->Wait(15s), 3);
  EXPECT_THAT(agent->stderr_text(), HasSubstr("protocol version mismatch: the agent speaks version 7, this controller speaks version 1"));
  EXPECT_EQ(controller_->Wait(15s), 111);
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("protocol version mismatch"));
}

TEST_F(DistributedTest, ArchiveOverTheAgentsLimitIsAClearError) {
  Write("big.bin", std::string(200000, 'x'));
  const std::string script = Write("big.js", "const data = open('big.bin');\nexport default () => {};\n");
  const std::string address = StartController({script}, 1);
  ASSERT_FALSE(address.empty());
  auto agent = StartAgent(address, "small", {"--max-archive-bytes", "10000"});
  EXPECT_EQ(controller_->Wait(20s), 104) << controller_->stderr_text();
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("agent small: the archive is over this agent's limit of 10000 bytes"));
  EXPECT_EQ(agent->Wait(10s), 0);
}

TEST_F(DistributedTest, MutualTlsOnTheControlPlane) {
  testutil::MakeCertificates(dir_);
  const std::string script = Write("tls.js", Script("{ iterations: 20 }"));
  const std::string export_path = dir_ + "/summary.json";
  const std::string address =
      StartController({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key", "--tls-ca",
                       dir_ + "/ca.pem", "-e", "TARGET=" + address_, "--summary-export", export_path, script},
                      1);
  ASSERT_FALSE(address.empty());
  const std::string host = "localhost" + address.substr(address.rfind(':'));
  auto agent = StartAgent(host, "tls-agent",
                          {"--tls-ca", dir_ + "/ca.pem", "--tls-cert", dir_ + "/client.pem", "--tls-key", dir_ + "/client.key"});
  EXPECT_EQ(controller_->Wait(30s), 0) << controller_->stderr_text() << agent->stderr_text();
  EXPECT_EQ(agent->Wait(10s), 0) << agent->stderr_text();
  EXPECT_EQ(Export(export_path)["metrics"]["iterations"]["count"].get<int>(), 20);
}

TEST_F(DistributedTest, AgentWithTheWrongCaNeverJoinsAndSaysWhy) {
  testutil::MakeCertificates(dir_);
  const std::string script = Write("tls.js", Script("{ iterations: 1 }"));
  const std::string address =
      StartController({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key", "--agent-timeout", "5s",
                       "-e", "TARGET=" + address_, script},
                      1);
  ASSERT_FALSE(address.empty());
  const std::string host = "localhost" + address.substr(address.rfind(':'));
  auto agent = StartAgent(host, "lost-agent", {"--tls-ca", dir_ + "/other-ca.pem"});
  EXPECT_EQ(controller_->Wait(20s), 111);
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("only 0 of 1 agents joined"));
  EXPECT_TRUE(agent->WaitForLine("waiting for the controller at localhost:[0-9]+: cannot reach the controller", 5s).ok())
      << agent->stderr_text();
  agent->Signal(SIGTERM);
}

TEST_F(DistributedTest, ArchiveRunsWithoutTheSourcesAndBadArchivesAreRefused) {
  const std::string src = dir_ + "/src";
  std::filesystem::create_directories(src + "/definitions");
  std::filesystem::copy_file(dir_ + "/definitions/hello.proto", src + "/definitions/hello.proto");
  std::ofstream(src + "/data.txt") << "from the archive";
  std::ofstream(src + "/a.js") << std::string(R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const text = open('data.txt');
export const options = { iterations: 5 };
export default () => {
  client.connect(__ENV.TARGET, { plaintext: true });
  check(client.invoke('hello.HelloService/SayHello', { greeting: text }), { 'ok': (r) => r.status === grpc.StatusOK });
  check(text, { 'file from the archive': (t) => t === 'from the archive' });
  client.close();
};
)");
  const std::string tar = dir_ + "/test.tar";
  testutil::RunResult made =
      testutil::Run(testutil::BinaryPath("barrage"), {"archive", "-e", "TARGET=" + address_, "-o", tar, src + "/a.js"}, 30s);
  ASSERT_EQ(made.exit_code, 0) << made.stderr_text;
  std::filesystem::remove_all(src);  // the archive holds everything
  const std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run = Barrage({"--agents", "2", "--summary-export", export_path, tar}, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  nlohmann::json summary = Export(export_path);
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 5);
  EXPECT_EQ(summary["metrics"]["checks"]["passes"].get<int>(), 10);
  const std::string bad = Write("bad.tar", "this is not a tar file at all");
  run = Barrage({bad}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("bad.tar"));
}

TEST_F(DistributedTest, YamlConfigHoldsOptionsAndRunSettings) {
  const std::string script = Write("y.js", Script("{}"));
  const std::string config = Write("run.yaml", R"(
iterations: 40
vus: 4
barrage:
  agents: 2
  agentTimeout: 30s
)");
  const std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run =
      Barrage({"--config", config, "-e", "TARGET=" + address_, "--summary-export", export_path, script}, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("execution: distributed over 2 agents"));
  EXPECT_EQ(Export(export_path)["metrics"]["iterations"]["count"].get<int>(), 40);
  const std::string bad = Write("bad.yaml", "barrage:\n  agents: many\n");
  run = Barrage({"--config", bad, script}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("bad.yaml: barrage.agents: expected a positive integer"));
}

TEST_F(DistributedTest, ListeningBeyondLoopbackNeedsTlsOrAToken) {
  const std::string script = Write("t.js", "export default () => {};\n");
  testutil::RunResult run = Barrage({"--listen", "0.0.0.0:0", "--expect-agents", "1", script}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("listening beyond loopback needs a way to authenticate agents: --token-file, "
                                         "or mutual TLS (--tls-cert/--tls-key with --tls-ca)"));
  run = Barrage({"--agents", "2", "--listen", "127.0.0.1:0", script}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("--agents and --listen: choose one"));
}

}  // namespace
}  // namespace barrage
