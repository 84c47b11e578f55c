// The control plane under attack and under faults (issue 13, items 4-8, 11,
// 12, 14 and the local-agent parts of 1 and 13): a real controller
// (`barrage run`) and real barrage-agent processes on loopback, and, where a
// misbehaving peer is needed, a fake agent in this process that speaks
// control.proto itself. Every wait is bounded.
#include <dirent.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "barrage/v1/control.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/control_messages.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// --- Processes seen through /proc ---

// The processes whose parent is `pid`.
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long child = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    std::ifstream stat(absl::StrCat("/proc/", child, "/stat"));
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // pid (comm) state ppid ...: comm may hold spaces, so from the last ')'.
    const size_t paren = text.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(text.substr(paren + 1));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == pid && state != "Z") out.push_back(static_cast<pid_t>(child));
  }
  closedir(dir);
  return out;
}

// True while `pid` exists and is not a zombie.
bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat) return false;
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && text.size() > paren + 2 && text[paren + 2] != 'Z';
}

std::string CommandLine(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : text) c = c == '\0' ? ' ' : c;
  return text;
}

int Threads(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Kills the listed processes when the test ends, however it ends: agents
// live in process groups of their own, so the fixture's group kill of the
// controller does not reach them.
struct KillOnExit {
  std::vector<pid_t> pids;
  ~KillOnExit() {
    for (pid_t p : pids) {
      if (Alive(p)) kill(p, SIGKILL);
    }
  }
};

// --- A fake agent: speaks control.proto from the test, bounded by a deadline ---

class FakeAgent {
 public:
  explicit FakeAgent(const std::string& address, std::chrono::seconds deadline = 30s) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Control::NewStub(channel_);
    context_.set_deadline(std::chrono::system_clock::now() + deadline);
    stream_ = stub_->Session(&context_);
  }
  ~FakeAgent() {
    context_.TryCancel();
    if (!finished_) (void)stream_->Finish();
  }

  bool Send(const v1::AgentMessage& m) { return stream_->Write(m); }
  bool Hello(const std::string& name, const std::string& token = "", uint32_t version = 1) {
    v1::AgentMessage m;
    m.mutable_hello()->set_protocol_version(version);
    m.mutable_hello()->set_name(name);
    m.mutable_hello()->set_capacity(1);
    m.mutable_hello()->set_token(token);
    return Send(m);
  }
  // Reads until a message of kind `want` (the others are dropped); nullopt
  // when the stream ends first.
  std::optional<v1::ControllerMessage> ReadUntil(v1::ControllerMessage::MsgCase want) {
    v1::ControllerMessage m;
    while (stream_->Read(&m)) {
      if (m.msg_case() == want) return m;
    }
    return std::nullopt;
  }
  // Reads until the controller closes the stream; its status.
  grpc::Status ReadToEnd() {
    v1::ControllerMessage m;
    while (stream_->Read(&m)) {
    }
    finished_ = true;
    return stream_->Finish();
  }

 private:
  bool finished_ = false;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
};

using testutil::IterationsDelta;

class ControlPlaneTest : public testutil::ControllerFixture {
 protected:
  // A script of `options` whose VUs call SayHello on the target.
  std::string SayHelloScript(const std::string& options) {
    return Write("say_hello.js", absl::StrCat(R"(
import grpc from 'k6/net/grpc';
import { sleep } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = )", options, R"(;
export default () => {
  client.connect(__ENV.TARGET, { plaintext: true });
  client.invoke('hello.HelloService/SayHello', { greeting: 'x' });
  client.close();
  sleep(0.05);
};
)"));
  }
};

// --- Item 4: who may join, and what agents are given ---

TEST_F(ControlPlaneTest, ServerOnlyTlsBeyondLoopbackIsNoAgentCredential) {
  testutil::MakeCertificates(dir_);
  const std::string script = Write("t.js", "export default () => {};\n");
  const std::vector<std::string> tls = {"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key"};
  std::vector<std::string> args = {"--listen", "0.0.0.0:0", "--expect-agents", "1", "--agent-timeout", "2s"};
  args.insert(args.end(), tls.begin(), tls.end());
  args.push_back(script);
  testutil::RunResult run = Barrage(args, 30s);
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("--listen 0.0.0.0:0: listening beyond loopback needs a way to "
                                         "authenticate agents"));
  EXPECT_THAT(run.stderr_text, HasSubstr("server-only TLS authenticates the controller, not the agents"));
  // Mutual TLS is a credential; so is a token; --insecure is the explicit way out.
  args.insert(args.begin(), {"--tls-ca", dir_ + "/ca.pem"});
  run = Barrage(args, 30s);
  EXPECT_EQ(run.exit_code, 111) << run.stderr_text;  // accepted; nobody joined within 2 s
  args.erase(args.begin(), args.begin() + 2);
  args.insert(args.begin(), "--insecure");
  run = Barrage(args, 30s);
  EXPECT_EQ(run.exit_code, 111) << run.stderr_text;
  // A CA without a certificate of the controller's own is no TLS at all.
  run = Barrage({"--listen", "127.0.0.1:0", "--expect-agents", "1", "--tls-ca", dir_ + "/ca.pem", script}, 30s);
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("--tls-ca: only with --tls-cert and --tls-key"));
}

TEST_F(ControlPlaneTest, AgentsGetTheDashEValuesButNotTheControllersEnvironment) {
  const std::string script = Write("env.js", R"(
import { check } from 'k6';
export const options = { iterations: 1 };
export default () => {
  check(__ENV, {
    'secret visible': (e) => e.BARRAGE_TEST_SECRET === 'hunter2',
    'dash e visible': (e) => e.FROM_E === 'yes',
  });
};
)");
  const testutil::EnvExtra env = {{"BARRAGE_TEST_SECRET", "hunter2"}};
  {
    // What a remote agent receives, read off the wire.
    const std::string address = StartController({"-e", "FROM_E=yes", script}, 1, env);
    ASSERT_FALSE(address.empty());
    FakeAgent agent(address);
    ASSERT_TRUE(agent.Hello("reader"));
    std::optional<v1::ControllerMessage> assignment = agent.ReadUntil(v1::ControllerMessage::kAssignment);
    ASSERT_TRUE(assignment.has_value()) << controller_->stderr_text();
    const auto& got = assignment->assignment().env();
    EXPECT_EQ(got.count("BARRAGE_TEST_SECRET"), 0u);
    EXPECT_EQ(got.count("PATH"), 0u);
    ASSERT_EQ(got.count("FROM_E"), 1u);
    EXPECT_EQ(got.at("FROM_E"), "yes");
    controller_->Signal(SIGKILL);
    controller_->Wait(10s);
  }
  {
    // Only when asked.
    const std::string address =
        StartController({"--include-system-env-vars", "-e", "FROM_E=yes", script}, 1, env);
    ASSERT_FALSE(address.empty());
    FakeAgent agent(address);
    ASSERT_TRUE(agent.Hello("reader"));
    std::optional<v1::ControllerMessage> assignment = agent.ReadUntil(v1::ControllerMessage::kAssignment);
    ASSERT_TRUE(assignment.has_value()) << controller_->stderr_text();
    ASSERT_EQ(assignment->assignment().env().count("BARRAGE_TEST_SECRET"), 1u);
    controller_->Signal(SIGKILL);
    controller_->Wait(10s);
  }
  // Local agents alike; the embedded run keeps k6's __ENV: process and -e.
  const std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run = testutil::Run(
      testutil::BinaryPath("barrage"),
      {"run", "--agents", "1", "-e", "FROM_E=yes", "--summary-export", export_path, script}, 60s, env);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("✗ secret visible"));
  EXPECT_THAT(run.stdout_text, HasSubstr("✓ dash e visible"));
  run = testutil::Run(testutil::BinaryPath("barrage"), {"run", "-e", "FROM_E=yes", script}, 60s, env);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("✓ secret visible"));
  EXPECT_THAT(run.stdout_text, HasSubstr("✓ dash e visible"));
}

TEST_F(ControlPlaneTest, LocalAgentsJoinWithAPrivateRandomToken) {
  const std::string script = SayHelloScript("{ scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '20s' } } }");
  controller_ = testutil::ChildProcess::Start(testutil::BinaryPath("barrage"),
                                              {"run", "--agents", "2", "-e", "TARGET=" + address_, script});
  const std::string address = ListeningAddress();
  ASSERT_FALSE(address.empty());
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  KillOnExit cleanup{ChildrenOf(controller_->pid())};
  ASSERT_EQ(cleanup.pids.size(), 2u);
  for (pid_t p : cleanup.pids) {
    // Not on the command line, which every local user can read.
    EXPECT_THAT(CommandLine(p), Not(HasSubstr("token"))) << CommandLine(p);
  }
  // Another local user, with no token: refused for that, before anything
  // else is said (not "the test already has its 2 agents").
  FakeAgent intruder(address);
  ASSERT_TRUE(intruder.Hello("intruder"));
  std::optional<v1::ControllerMessage> reject = intruder.ReadUntil(v1::ControllerMessage::kReject);
  ASSERT_TRUE(reject.has_value());
  EXPECT_EQ(reject->reject().reason(), "wrong or missing token");
  EXPECT_FALSE(reject->reject().retryable());
  controller_->Signal(SIGINT);
  EXPECT_EQ(controller_->Wait(30s), 105) << controller_->stderr_text();
}

// --- Item 5: before authentication ---

TEST_F(ControlPlaneTest, AnUnauthenticatedPeerLearnsNothingAboutVersions) {
  const std::string token = Write("token", "s3cret\n");
  const std::string script = Write("t.js", "export default () => {};\n");
  const std::string address = StartController({"--token-file", token, script}, 1);
  ASSERT_FALSE(address.empty());
  {
    FakeAgent peer(address);
    ASSERT_TRUE(peer.Hello("scanner", "", /*version=*/7));
    std::optional<v1::ControllerMessage> reject = peer.ReadUntil(v1::ControllerMessage::kReject);
    ASSERT_TRUE(reject.has_value());
    EXPECT_EQ(reject->reject().reason(), "wrong or missing token");
  }
  {
    // With the token, the version is checked and named.
    FakeAgent agent(address);
    ASSERT_TRUE(agent.Hello("old", "s3cret", /*version=*/7));
    std::optional<v1::ControllerMessage> reject = agent.ReadUntil(v1::ControllerMessage::kReject);
    ASSERT_TRUE(reject.has_value());
    EXPECT_THAT(reject->reject().reason(), HasSubstr("protocol version mismatch: the agent speaks version 7"));
  }
  // The controller's own log of the first refusal does not name versions either.
  absl::StatusOr<std::string> line = controller_->WaitForLine("refused agent 'scanner'", 5s);
  ASSERT_TRUE(line.ok()) << controller_->stderr_text();
  EXPECT_THAT(*line, HasSubstr("wrong or missing token"));
  EXPECT_THAT(*line, Not(HasSubstr("version")));
}

TEST_F(ControlPlaneTest, StreamsThatNeverSayHelloAreCappedTimedOutAndHoldNoThreads) {
  const std::string script = SayHelloScript("{ iterations: 4 }");
  const std::string address = StartController({"--agent-timeout", "50s", "-e", "TARGET=" + address_, script}, 1);
  ASSERT_FALSE(address.empty());
  const int threads_before = Threads(controller_->pid());
  // 240 silent streams over 24 connections (the controller lets each
  // connection have 256 at a time).
  constexpr int kStreams = 240;
  constexpr int kConnections = 24;
  struct Silent {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream;
  };
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::Control::Stub>> stubs;
  for (int i = 0; i < kConnections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(v1::Control::NewStub(channels.back()));
  }
  std::vector<std::unique_ptr<Silent>> silent;
  const auto opened = std::chrono::steady_clock::now();
  for (int i = 0; i < kStreams; ++i) {
    auto s = std::make_unique<Silent>();
    s->context.set_deadline(std::chrono::system_clock::now() + 40s);
    s->stream = stubs[i % kConnections]->Session(&s->context);
    silent.push_back(std::move(s));
  }
  std::this_thread::sleep_for(2s);
  const int threads_during = Threads(controller_->pid());
  EXPECT_LT(threads_during, threads_before + 16) << "before: " << threads_before;
  // Each ends: refused over the cap at once, or past the hello deadline.
  int refused = 0, timed_out = 0;
  for (auto& s : silent) {
    v1::ControllerMessage m;
    while (s->stream->Read(&m)) {
    }
    const grpc::Status st = s->stream->Finish();
    if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) refused++;
    if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
        st.error_message().find("no hello within 10s") != std::string::npos) {
      timed_out++;
    }
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count();
  EXPECT_EQ(refused + timed_out, kStreams) << refused << " refused, " << timed_out << " timed out";
  EXPECT_GE(refused, kStreams - 64);
  EXPECT_LT(took, 20) << "the hello deadline is 10 s";
  // A real agent still gets in, and the run ends well.
  auto agent = StartAgent(address, "a-1");
  EXPECT_EQ(controller_->Wait(40s), 0) << controller_->stderr_text();
  EXPECT_EQ(agent->Wait(10s), 0) << agent->stderr_text();
}

// --- Item 6: an authenticated agent speaking nonsense ---

class NonsenseTest : public ControlPlaneTest {
 protected:
  // A controller for one agent with a token, and a fake agent with that
  // token that has joined.
  void SetUp() override {
    ControlPlaneTest::SetUp();
    const std::string token = Write("token", "s3cret\n");
    const std::string script = Write("t.js", R"(
export const options = { scenarios: { s: { executor: 'per-vu-iterations', vus: 2, iterations: 1 } } };
export default () => {};
)");
    export_path_ = dir_ + "/summary.json";
    address_ = StartController({"--token-file", token, "--agent-timeout", "5s", "--summary-export", export_path_, script}, 1);
    ASSERT_FALSE(address_.empty());
    agent_ = std::make_unique<FakeAgent>(address_);
    ASSERT_TRUE(agent_->Hello("fake", "s3cret"));
    if (!agent_->ReadUntil(v1::ControllerMessage::kWelcome).has_value()) {
      const std::string port = address_.substr(address_.rfind(':') + 1);
      testutil::RunResult ss = testutil::Run("/bin/sh", {"-c", "ss -tanp | grep :" + port}, 10s);
      FAIL() << controller_->stderr_text() << agent_->ReadToEnd().error_message() << "\n" << ss.stdout_text << " exit " << controller_->Wait(2s);
    }
  }
  void ReadyAndStarted() {
    ASSERT_TRUE(agent_->ReadUntil(v1::ControllerMessage::kAssignment).has_value());
    v1::AgentMessage ready;
    ready.mutable_ready()->set_vus(2);
    ASSERT_TRUE(agent_->Send(ready));
    ASSERT_TRUE(agent_->ReadUntil(v1::ControllerMessage::kStart).has_value()) << controller_->stderr_text() << agent_->ReadToEnd().error_message();
  }
  // The controller refuses the agent, names it and why, and ends non-zero.
  void ExpectRefused(const std::string& why) {
    const grpc::Status st = agent_->ReadToEnd();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message() << controller_->stderr_text();
    EXPECT_THAT(st.error_message(), HasSubstr(why));
    EXPECT_EQ(controller_->Wait(30s), 111) << controller_->stderr_text();
    EXPECT_THAT(controller_->stderr_text(), HasSubstr(absl::StrCat("agent fake broke the protocol: ", why)));
  }

  std::string address_;
  std::string export_path_;
  std::unique_ptr<FakeAgent> agent_;
};

TEST_F(NonsenseTest, DoneWithoutReady) {
  ASSERT_TRUE(agent_->ReadUntil(v1::ControllerMessage::kAssignment).has_value());
  v1::AgentMessage done;
  done.mutable_done();
  ASSERT_TRUE(agent_->Send(done));
  ExpectRefused("done before the test started");
}

TEST_F(NonsenseTest, MetricsBeforeTheAssignment) {
  ASSERT_TRUE(agent_->Send(IterationsDelta(1000)));
  ExpectRefused("metrics before the test started");
}

TEST_F(NonsenseTest, MetricsAfterDone) {
  ReadyAndStarted();
  ASSERT_TRUE(agent_->Send(IterationsDelta(2)));
  v1::AgentMessage done;
  done.mutable_done();
  ASSERT_TRUE(agent_->Send(done));
  ASSERT_TRUE(agent_->Send(IterationsDelta(1000)));
  ExpectRefused("metrics after done");
  // Nothing of the late delta counts.
  EXPECT_EQ(Export(export_path_)["metrics"]["iterations"]["count"].get<int>(), 2);
}

// Raw samples (--out json/csv) only when the assignment asked for them.
TEST_F(NonsenseTest, RawSamplesNobodyAskedFor) {
  ReadyAndStarted();
  v1::AgentMessage m;
  v1::RawSamples* raw = m.mutable_raw_samples();
  raw->add_metrics()->set_name("iterations");
  raw->add_tag_sets("");
  raw->add_samples()->set_value(1);
  ASSERT_TRUE(agent_->Send(m));
  ExpectRefused("raw samples it was not asked for");
}

TEST_F(NonsenseTest, ProgressThatWouldOverflow) {
  ReadyAndStarted();
  v1::AgentMessage p;
  p.mutable_progress()->set_vus_active(std::numeric_limits<int64_t>::max());
  p.mutable_progress()->set_vus_max(std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(agent_->Send(p));
  ExpectRefused("progress: vus_max 9223372036854775807 beyond the test's 2 VUs");
}

TEST_F(NonsenseTest, TrendSumOutsideCountTimesMinAndMax) {
  ReadyAndStarted();
  v1::AgentMessage m = IterationsDelta(10);
  m.mutable_metrics()->mutable_series(0)->set_sum(1e6);  // 10 samples of 1 cannot sum to a million
  ASSERT_TRUE(agent_->Send(m));
  ExpectRefused("metric 'iterations' {}: sum 1e+06 outside count x [min, max] = [10, 10]");
}

TEST_F(NonsenseTest, NameWithTerminalEscapesIsShownEscaped) {
  // A second fake agent is turned away (the test has its one agent), but
  // its name is logged: escaped, never raw.
  FakeAgent evil(address_);
  ASSERT_TRUE(evil.Hello("evil\x1b[2J\x1b]0;pwned\x07", "s3cret"));
  (void)evil.ReadToEnd();
  controller_->Signal(SIGKILL);
  controller_->Wait(20s);
  EXPECT_THAT(controller_->stderr_text(), Not(HasSubstr("\x1b[2J")));
  EXPECT_THAT(controller_->stderr_text(), Not(HasSubstr("\x07")));
  // Escaped once by the coordinator, and its backslashes once more by logfmt.
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("evil\\\\x1b[2J\\\\x1b]0;pwned\\\\x07"));
}

// --- Items 7 and 8: data beyond the limits ---

TEST_F(ControlPlaneTest, SeriesBeyondTheLimitAreDroppedAloneAndTheRunSaysSo) {
  // 110,000 iterations, each with a series of its own: past the 100,000
  // series limit only those new series go; iterations stay exact.
  const std::string script = Write("series.js", R"(
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';
const unique = new Counter('unique');
export const options = { scenarios: { s: { executor: 'shared-iterations', vus: 2, iterations: 110000, maxDuration: '5m' } } };
export default () => { unique.add(1, { id: String(exec.scenario.iterationInTest) }); };
)");
  const std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run = Barrage({"--summary-export", export_path, script}, 180s);
  EXPECT_EQ(run.exit_code, 112) << run.stderr_text;
  const nlohmann::json summary = Export(export_path);
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 110000);
  const int kept = summary["metrics"]["unique"]["count"].get<int>();
  EXPECT_LT(kept, 100000);
  EXPECT_GT(kept, 90000);
  EXPECT_THAT(run.stderr_text, HasSubstr("the limit of 100000 series was reached: new series are dropped"));
  EXPECT_THAT(run.stderr_text, HasSubstr("(first: metric 'unique' {"));
  // A line of the summary says so.
  EXPECT_THAT(run.stdout_text, HasSubstr(absl::StrCat("WARNING: ", 110000 - kept, " samples in ", 110000 - kept,
                                                      " new series were dropped at the limit of 100000 series")));
  EXPECT_EQ(summary["dropped"]["samples"].get<int>(), 110000 - kept);
}

TEST_F(ControlPlaneTest, AnIntervalOverGrpcsMessageLimitGetsThrough) {
  // 22,000 samples with a unique 3 KB tag each, in one interval: about
  // 70 MB, over gRPC's 64 MB message limit.
  const std::string script = Write("big.js", R"(
import { Trend } from 'k6/metrics';
const t = new Trend('tagged');
let pad = 'x';
while (pad.length < 3000) pad += pad;
pad = pad.substring(0, 3000);
export const options = { iterations: 1 };
export default () => { for (let i = 0; i < 22000; i++) t.add(i, { id: pad + i }); };
)");
  const std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run =
      Barrage({"--summary-export", export_path, "--summary-trend-stats", "count,max", script}, 120s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const nlohmann::json summary = Export(export_path);
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 1);
  EXPECT_EQ(summary["metrics"]["tagged"]["count"].get<int>(), 22000);
}

// --- Item 11: nothing outlives its controller ---

TEST_F(ControlPlaneTest, LocalAgentsDieWithAControllerKilledBeforeTheyJoined) {
  const std::string script = Write("t.js", "export default () => {};\n");
  controller_ = testutil::ChildProcess::Start(testutil::BinaryPath("barrage"), {"run", "--agents", "3", script});
  ASSERT_FALSE(ListeningAddress().empty());
  // Frozen as soon as it has started its agents (it runs a few
  // milliseconds at a time until then): they connect, but nobody answers.
  controller_->Signal(SIGSTOP);
  std::vector<pid_t> agents = ChildrenOf(controller_->pid());
  for (int i = 0; i < 2000 && agents.size() < 3; ++i) {
    controller_->Signal(SIGCONT);
    std::this_thread::sleep_for(2ms);
    controller_->Signal(SIGSTOP);
    agents = ChildrenOf(controller_->pid());
  }
  KillOnExit cleanup{agents};
  ASSERT_EQ(agents.size(), 3u);
  controller_->Signal(SIGKILL);
  EXPECT_EQ(controller_->Wait(10s), 128 + SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (pid_t p : agents) {
    while (Alive(p) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(Alive(p)) << "agent " << p << " outlived its controller: " << CommandLine(p);
  }
}

TEST_F(ControlPlaneTest, AOnceAgentGivesUpAfterItsJoinDeadline) {
  // A port nobody listens on: bound, then closed.
  const std::string address = StartController({Write("t.js", "export default () => {};\n")}, 1);
  ASSERT_FALSE(address.empty());
  controller_->Signal(SIGKILL);
  controller_->Wait(10s);
  const auto begin = std::chrono::steady_clock::now();
  auto agent = StartAgent(address, "patient", {"--join-timeout", "2s"});
  EXPECT_EQ(agent->Wait(15s), 5) << agent->stderr_text();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(), 8);
  EXPECT_THAT(agent->stderr_text(), HasSubstr(absl::StrCat("no controller at ", address,
                                                           " accepted this agent within 2s (--join-timeout)")));
}

TEST_F(ControlPlaneTest, AnAgentRunningSetupStopsWhenTheControllerGoes) {
  const std::string script = Write("setup.js", R"(
import { sleep } from 'k6';
export const options = { iterations: 1, setupTimeout: '60s' };
export function setup() { console.log('setup started'); sleep(40); }
export default () => {};
)");
  const std::string address = StartController({script}, 1);
  ASSERT_FALSE(address.empty());
  auto agent = StartAgent(address, "a-1");
  ASSERT_TRUE(controller_->WaitForLine("setup started", 30s).ok()) << controller_->stderr_text();
  controller_->Signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  EXPECT_EQ(agent->Wait(15s), 4) << agent->stderr_text();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count(), 10);
  EXPECT_THAT(agent->stderr_text(), HasSubstr("lost the controller"));
}

// --- Item 12: SIGTERM, as Kubernetes evicts a pod ---

TEST_F(ControlPlaneTest, SigtermStopsAnAgentGracefullyWithItsLastDelta) {
  const std::string script =
      SayHelloScript("{ scenarios: { s: { executor: 'constant-vus', vus: 4, duration: '60s', gracefulStop: '5s' } } }");
  const std::string export_path = dir_ + "/summary.json";
  const std::string address =
      StartController({"-e", "TARGET=" + address_, "--summary-export", export_path, script}, 2);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  auto a2 = StartAgent(address, "a-2");
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  std::this_thread::sleep_for(2500ms);
  const auto signalled = std::chrono::steady_clock::now();
  a2->Signal(SIGTERM);
  EXPECT_EQ(a2->Wait(15s), 0) << a2->stderr_text();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count(), 8);
  EXPECT_THAT(a2->stderr_text(), HasSubstr("stopping gracefully (SIGTERM)"));
  // The controller counts it as an agent that left: exit 111, every
  // measurement of it kept.
  EXPECT_EQ(controller_->Wait(30s), 111) << controller_->stderr_text();
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("agent a-2 (at "));
  EXPECT_THAT(controller_->stderr_text(), HasSubstr("it left early: received SIGTERM"));
  EXPECT_EQ(a1->Wait(15s), 0) << a1->stderr_text();
  const nlohmann::json summary = Export(export_path);
  int64_t completed = 0;
  for (const auto& a : summary["agents"]) {
    EXPECT_EQ(a["state"], "done") << a.dump();  // Done came, after the last delta
    completed += a["iterations_completed"].get<int64_t>();
  }
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int64_t>(), completed);
}

// --- Items 1, 13, 14: local agents and what a loss says ---

TEST_F(ControlPlaneTest, ALostLocalAgentShowsItsExitStatusAndLastStderrLines) {
  const std::string script =
      SayHelloScript("{ scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '30s', gracefulStop: '1s' } } }");
  controller_ = testutil::ChildProcess::Start(testutil::BinaryPath("barrage"),
                                              {"run", "--agents", "2", "-e", "TARGET=" + address_, script});
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  KillOnExit cleanup{ChildrenOf(controller_->pid())};
  pid_t second = -1;
  for (pid_t p : cleanup.pids) {
    if (CommandLine(p).find("--name agent-2") != std::string::npos) second = p;
  }
  ASSERT_GT(second, 0);
  kill(second, SIGKILL);
  EXPECT_EQ(controller_->Wait(20s), 111) << controller_->stderr_text();
  const std::string err = controller_->stderr_text();
  EXPECT_THAT(err, HasSubstr("agent agent-2 (at "));
  EXPECT_THAT(err, HasSubstr("the agent process was killed by signal 9 (SIGKILL)"));
  EXPECT_THAT(err, HasSubstr("its last lines on stderr:"));
  EXPECT_THAT(err, HasSubstr("joined the controller as agent-2"));
}

TEST_F(ControlPlaneTest, LocalAgentCountsAreCheckedWithClearMessages) {
  const std::string script = Write("t.js", "export default () => {};\n");
  const int cap = 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  testutil::RunResult run = Barrage({"--agents", std::to_string(cap + 1), script}, 30s);
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr(absl::StrCat("--agents ", cap + 1, ": more local agents than this machine's limit of ",
                                                      cap)));
  for (const char* bad : {"-1", "0"}) {
    run = Barrage({"--agents", bad, script}, 30s);
    EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
    EXPECT_THAT(run.stderr_text, HasSubstr(absl::StrCat("--agents: expected a whole number of agents, 1 or more, got '",
                                                        bad, "'")));
    EXPECT_LT(run.stderr_text.size(), 4000u) << run.stderr_text;
  }
}

TEST_F(ControlPlaneTest, AKeepaliveLossIsReportedAsSuch) {
  const std::string script =
      SayHelloScript("{ scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '40s', gracefulStop: '1s' } } }");
  const std::string address = StartController({"-e", "TARGET=" + address_, script}, 2);
  ASSERT_FALSE(address.empty());
  auto a1 = StartAgent(address, "a-1");
  auto a2 = StartAgent(address, "a-2");
  ASSERT_TRUE(controller_->WaitForLine("running \\(", 30s).ok()) << controller_->stderr_text();
  a2->Signal(SIGSTOP);  // alive, connected, silent: only keepalive can tell
  absl::StatusOr<std::string> lost = controller_->WaitForLine("agent a-2 \\(at ", 20s);
  a2->Signal(SIGKILL);
  ASSERT_TRUE(lost.ok()) << controller_->stderr_text();
  EXPECT_THAT(*lost, HasSubstr("keepalive"));
  EXPECT_THAT(*lost, Not(HasSubstr("the connection closed")));
  EXPECT_EQ(controller_->Wait(20s), 111) << controller_->stderr_text();
}

}  // namespace
}  // namespace barrage
