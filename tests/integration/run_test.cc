// `barrage run` end to end: the real barrage and barrage-target binaries on
// loopback, each run bounded in time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class RunTest : public ::testing::Test {
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

TEST_F(RunTest, SeedScriptPassesItsChecksAndExitsZero) {
  std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run = Barrage({"-d", "2s", "-e", "TARGET=" + address_, "--summary-export", export_path,
                                     testutil::SourcePath("scripts/examples/unary.js")});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("✓ status is OK"));
  EXPECT_THAT(run.stdout_text, HasSubstr("grpc_req_duration"));
  EXPECT_THAT(run.stdout_text, HasSubstr("10 looping VUs for 2s"));
  EXPECT_THAT(run.stderr_text, HasSubstr(R"({\"reply\":\"hello Bert\"})"));
  std::ifstream in(export_path);
  nlohmann::json summary = nlohmann::json::parse(in);
  const double requests = summary["metrics"]["grpc_req_duration"].value("count", 0.0);
  const double iterations = summary["metrics"]["iterations"]["count"].get<double>();
  EXPECT_GT(iterations, 10);
  if (requests > 0) EXPECT_EQ(requests, iterations);
  EXPECT_EQ(summary["metrics"]["checks"]["fails"].get<int>(), 0);
  EXPECT_EQ(summary["metrics"]["vus"]["value"].get<int>(), 10);  // the running test's VUs, not 0 after it
  EXPECT_EQ(summary["metrics"]["vus_max"]["value"].get<int>(), 10);
  EXPECT_EQ(summary["metrics"]["checks"]["value"].get<double>(), 1.0);
  EXPECT_FALSE(summary["metrics"]["grpc_req_duration"]["thresholds"]["p(95)<200"].get<bool>());
}

TEST_F(RunTest, SharedIterationsAreExact) {
  std::string export_path = dir_ + "/summary.json";
  testutil::RunResult run = Barrage({"-q", "-i", "500", "-u", "7", "-e", "TARGET=" + address_, "--summary-export",
                                     export_path, testutil::SourcePath("scripts/examples/custom_metrics.js")});
  // custom_metrics.js's own threshold expects 200 replies; -i 500 makes it fail.
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 500);
  EXPECT_EQ(summary["metrics"]["replies"]["count"].get<int>(), 500);
  EXPECT_EQ(summary["metrics"]["reply_length"]["max"].get<double>(), 9);  // "hello vu7": 7 VUs, one digit
  EXPECT_THAT(run.stderr_text, HasSubstr("thresholds on metrics 'replies' have been crossed"));
}

TEST_F(RunTest, FailingThresholdsExit99) {
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, testutil::SourcePath("scripts/examples/thresholds_fail.js")});
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("✗ 'p(95)<0.001'"));
  EXPECT_THAT(run.stdout_text, HasSubstr("✗ reply is impossible"));
}

TEST_F(RunTest, GroupsAndSetupDataExample) {
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, testutil::SourcePath("scripts/examples/groups.js")});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("100 complete and 0 interrupted iterations"));
  EXPECT_THAT(run.stderr_text, HasSubstr("greeted 3 names"));
}

TEST_F(RunTest, UnreachableTargetNamesTheAddressWithinTheTimeout) {
  std::string script = Write("down.js", R"(
import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { iterations: 1 };
export default () => { client.connect('127.0.0.1:1', { plaintext: true, timeout: '3s' }); };
)");
  testutil::RunResult run = Barrage({"-q", script}, 30s);
  EXPECT_EQ(run.exit_code, 0);  // an iteration's exception does not change the exit code
  EXPECT_THAT(run.stderr_text, HasSubstr("127.0.0.1:1"));
}

TEST_F(RunTest, AbortOnFailStopsTheTestEarlyWithExit99) {
  std::string script = Write("abort.js", R"(
import grpc from 'k6/net/grpc';
import { check, sleep } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = {
  vus: 2, duration: '60s',
  thresholds: { checks: [{ threshold: 'rate==1', abortOnFail: true, delayAbortEval: '1s' }] },
};
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const r = client.invoke('hello.HelloService/SayHello', { greeting: 'x' });
  check(r, { 'never true': (x) => x.message.reply === 'nope' });
  sleep(0.05);
};
export function teardown() { console.log('teardown ran'); }
)");
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run = Barrage({"-q", "-e", "TARGET=" + address_, script}, 50s);
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);  // not the 60 s duration
  EXPECT_THAT(run.stderr_text, HasSubstr("abortOnFail"));
  EXPECT_THAT(run.stderr_text, HasSubstr("teardown ran"));
  EXPECT_THAT(run.stdout_text, HasSubstr("✗ 'rate==1'"));
}

TEST_F(RunTest, SetupTimeoutExits100AndTeardownTimeoutExits101) {
  std::string setup = Write("setup_slow.js",
                            "import { sleep } from 'k6';\nexport const options = { setupTimeout: '1s' };\n"
                            "export function setup() { sleep(10); }\nexport default () => {};\n");
  testutil::RunResult run = Barrage({"-q", setup}, 30s);
  EXPECT_EQ(run.exit_code, 100) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("setup() execution timed out after 1s"));
  std::string teardown = Write("teardown_slow.js",
                               "import { sleep } from 'k6';\nexport const options = { teardownTimeout: '1s' };\n"
                               "export function teardown() { sleep(10); }\nexport default () => {};\n");
  run = Barrage({"-q", teardown}, 30s);
  EXPECT_EQ(run.exit_code, 101) << run.stderr_text;
}

TEST_F(RunTest, ExceptionInSetupExits107AndSkipsTeardown) {
  std::string script = Write("setup_throws.js",
                             "export function setup() { throw new Error('no fixtures'); }\n"
                             "export function teardown() { console.log('teardown ran'); }\n"
                             "export default () => {};\n");
  testutil::RunResult run = Barrage({"-q", script}, 30s);
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("no fixtures"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("teardown ran")));
}

TEST_F(RunTest, TestAbortExits108) {
  std::string script = Write("abort_script.js",
                             "import exec from 'k6/execution';\nexport const options = { iterations: 100 };\n"
                             "export default () => { if (__ITER === 2) exec.test.abort('enough'); };\n");
  testutil::RunResult run = Barrage({"-q", script}, 30s);
  EXPECT_EQ(run.exit_code, 108) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("test aborted: enough"));
}

TEST_F(RunTest, SummaryFlagsTagsAndEnv) {
  std::string export_path = dir_ + "/summary.json";
  std::string script = Write("flags.js", R"(
import { check } from 'k6';
import { Counter } from 'k6/metrics';
const hits = new Counter('hits');
export const options = { thresholds: { 'hits{env:ci}': ['count==5'] } };
export default () => { hits.add(1); check(__ENV.WHO, { 'env reached the VU': (w) => w === 'me' }); };
)");
  testutil::RunResult run = Barrage({"-q", "-i", "5", "-e", "WHO=me", "--tag", "env=ci", "--summary-trend-stats",
                                     "avg,p(99),count", "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("✓ env reached the VU"));
  EXPECT_THAT(run.stdout_text, HasSubstr("p(99)="));
  EXPECT_THAT(run.stdout_text, HasSubstr("count="));
  EXPECT_THAT(run.stdout_text, Not(HasSubstr("med=")));
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  EXPECT_EQ(summary["metrics"]["hits{env:ci}"]["count"].get<int>(), 5);
  EXPECT_TRUE(summary["metrics"]["iteration_duration"].contains("p(99)"));

  testutil::RunResult quiet = Barrage({"-q", "--no-summary", "-i", "5", "--tag", "env=ci", "--summary-export", export_path + ".2", script});
  EXPECT_EQ(quiet.exit_code, 0);
  EXPECT_THAT(quiet.stdout_text, Not(HasSubstr("TOTAL RESULTS")));
  EXPECT_FALSE(std::filesystem::exists(export_path + ".2"));  // --no-summary disables the export too
}

TEST_F(RunTest, ConstantArrivalRateAgainstTheTarget) {
  std::string export_path = dir_ + "/summary.json";
  std::string script = Write("arrivals.js", R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = {
  scenarios: { steady: { executor: 'constant-arrival-rate', rate: 200, timeUnit: '1s', duration: '2s',
                         preAllocatedVUs: 5, maxVUs: 20 } },
};
let connected = false;
export default () => {
  if (!connected) { client.connect(__ENV.TARGET, { plaintext: true }); connected = true; }
  const r = client.invoke('hello.HelloService/SayHello', { greeting: 'rate' });
  check(r, { 'ok': (x) => x.status === grpc.StatusOK });
};
)");
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("* steady: 200.00 iterations/s for 2s (maxVUs: 5-20, gracefulStop: 30s)"));
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  const int iterations = summary["metrics"]["iterations"]["count"].get<int>();
  const int dropped = summary["metrics"].contains("dropped_iterations")
                          ? summary["metrics"]["dropped_iterations"]["count"].get<int>() : 0;
  EXPECT_EQ(iterations + dropped, 400);  // every due iteration started or was dropped
  EXPECT_GE(iterations, 396);             // a fast target: (almost) none dropped
  EXPECT_EQ(summary["metrics"]["checks"]["fails"].get<int>(), 0);
}

TEST_F(RunTest, StagesRampVusUpAndDown) {
  std::string export_path = dir_ + "/summary.json";
  std::string script = Write("stages.js", R"(
import grpc from 'k6/net/grpc';
import { sleep } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { stages: [{ duration: '1s', target: 4 }, { duration: '1s', target: 0 }] };
let connected = false;
export default () => {
  if (!connected) { client.connect(__ENV.TARGET, { plaintext: true }); connected = true; }
  client.invoke('hello.HelloService/SayHello', { greeting: 'ramp' });
  sleep(0.01);
};
)");
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("* default: Up to 4 looping VUs for 2s over 2 stages (gracefulRampDown: 30s, gracefulStop: 30s)"));
  // --stage replaces the script's stages (a higher source wipes them).
  testutil::RunResult flags = Barrage({"-e", "TARGET=" + address_, "-s", "500ms:2", "-s", "500ms:0", script});
  EXPECT_EQ(flags.exit_code, 0) << flags.stderr_text;
  EXPECT_THAT(flags.stdout_text, HasSubstr("Up to 2 looping VUs for 1s over 2 stages"));
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  // vus is sampled once a second (as in k6), so its max may miss the peak.
  EXPECT_GE(summary["metrics"]["vus"]["max"].get<int>(), 2);
  EXPECT_LE(summary["metrics"]["vus"]["max"].get<int>(), 4);
  EXPECT_EQ(summary["metrics"]["vus_max"]["value"].get<int>(), 4);
  EXPECT_GT(summary["metrics"]["iterations"]["count"].get<int>(), 20);
}

struct BadInput {
  std::string name;
  std::string script;            // written as bad.js beside definitions/
  std::vector<std::string> args;  // extra flags
  int exit_code;
  std::string message;
};

class BadInputTest : public RunTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(BadInputTest, FailsWithAClearError) {
  const BadInput& c = GetParam();
  std::vector<std::string> args = c.args;
  args.push_back("-q");
  args.push_back("-e");
  args.push_back("TARGET=" + address_);
  args.push_back(c.script.empty() ? dir_ + "/missing.js" : Write("bad.js", c.script));
  testutil::RunResult run = Barrage(args, 60s);
  EXPECT_EQ(run.exit_code, c.exit_code) << run.stdout_text << run.stderr_text;
  // The log is logfmt when stderr is not a terminal: undo its quoting.
  const std::string text = absl::StrReplaceAll(run.stdout_text + run.stderr_text,
                                               {{"\\\"", "\""}, {"\\n", "\n"}, {"\\t", "\t"}});
  EXPECT_THAT(text, HasSubstr(c.message));
  EXPECT_FALSE(run.timed_out);
}

const char kHead[] = "import grpc from 'k6/net/grpc';\nconst client = new grpc.Client();\n";

INSTANTIATE_TEST_SUITE_P(
    Table, BadInputTest,
    ::testing::Values(
        BadInput{"MissingScript", "", {}, 107, "missing.js\" couldn't be found on local disk"},
        BadInput{"SyntaxError", "export default () => {\n  let x = ;\n};\n", {}, 107, "bad.js:2:11: SyntaxError"},
        BadInput{"UnknownModule", "import x from 'k6/nope';\nexport default () => {};\n", {}, 107, "unknown module: k6/nope"},
        BadInput{"MissingProto", std::string(kHead) + "client.load(['definitions'], 'nope.proto');\nexport default () => {};\n", {}, 107, "nope.proto"},
        BadInput{"ProtoSyntaxError", std::string(kHead) + "client.load([], 'broken.proto');\nexport default () => {};\n", {}, 107, "broken.proto:3"},
        BadInput{"LoadOutsideInit", std::string(kHead) + "export default () => { client.load(['definitions'], 'hello.proto'); };\nexport const options = { iterations: 1 };\n", {}, 0, "load must be called in the init context"},
        BadInput{"InvokeBeforeConnect", std::string(kHead) + "client.load(['definitions'], 'hello.proto');\nexport default () => { client.invoke('hello.HelloService/SayHello', {}); };\n", {}, 0, "no gRPC connection, you must call connect first"},
        BadInput{"UnknownMethod", std::string(kHead) + "client.load(['definitions'], 'hello.proto');\nexport default () => { client.connect(__ENV.TARGET, { plaintext: true }); client.invoke('hello.HelloService/Nope', {}); };\n", {}, 0, "method \"/hello.HelloService/Nope\" not found in file descriptors"},
        BadInput{"UnknownField", std::string(kHead) + "client.load(['definitions'], 'hello.proto');\nexport default () => { client.connect(__ENV.TARGET, { plaintext: true }); client.invoke('hello.HelloService/SayHello', { nope: 1 }); };\n", {}, 0, "unable to serialise request object to protocol buffer"},
        BadInput{"WrongFieldType", std::string(kHead) + "client.load(['definitions'], 'hello.proto');\nexport default () => { client.connect(__ENV.TARGET, { plaintext: true }); client.invoke('hello.HelloService/SayHello', { greeting: { a: 1 } }); };\n", {}, 0, "unable to serialise request object to protocol buffer"},
        BadInput{"UnknownConnectParam", std::string(kHead) + "client.load(['definitions'], 'hello.proto');\nexport default () => { client.connect(__ENV.TARGET, { plaintext: true, bogus: 1 }); };\n", {}, 0, "unknown connect param: \"bogus\""},
        BadInput{"UnknownInvokeParam", std::string(kHead) + "client.load(['definitions'], 'hello.proto');\nexport default () => { client.connect(__ENV.TARGET, { plaintext: true }); client.invoke('hello.HelloService/SayHello', {}, { authority: 'x' }); };\n", {}, 0, "unknown param: \"authority\""},
        BadInput{"BadDuration", "export const options = { duration: '10 parsecs' };\nexport default () => {};\n", {}, 104, "options.duration: invalid duration"},
        BadInput{"NegativeVus", "export const options = { vus: -3, duration: '1s' };\nexport default () => {};\n", {}, 104, "options.vus: must not be negative"},
        BadInput{"UnknownExecutor", "export const options = { scenarios: { s: { executor: 'warp-speed' } } };\nexport default () => {};\n", {}, 104, "options.scenarios.s.executor: unknown executor 'warp-speed'"},
        BadInput{"BadThresholdExpression", "export const options = { thresholds: { checks: ['rate>>1'] } };\nexport default () => {};\n", {}, 104, "options.thresholds[\"checks\"][0]"},
        BadInput{"ThresholdOnUnknownMetric", "export const options = { thresholds: { nope_metric: ['count>1'] } };\nexport default () => {};\n", {}, 104, "no metric name \"nope_metric\" found"},
        BadInput{"ArrivalRateWithoutRate", "export const options = { scenarios: { a: { executor: 'constant-arrival-rate', duration: '5s', preAllocatedVUs: 2 } } };\nexport default () => {};\n", {}, 104, "options.scenarios.a.rate: required for constant-arrival-rate"},
        BadInput{"ArrivalRateMaxBelowPre", "export const options = { scenarios: { a: { executor: 'constant-arrival-rate', rate: 5, duration: '5s', preAllocatedVUs: 4, maxVUs: 2 } } };\nexport default () => {};\n", {}, 104, "scenario 'a': maxVUs (2) must not be less than preAllocatedVUs (4)"},
        BadInput{"WrongAggregation", "export const options = { thresholds: { checks: ['p(95)<1'] } };\nexport default () => {};\n", {}, 104, "p(95)"},
        BadInput{"UnknownFlag", "export default () => {};\n", {"--warp-factor", "9"}, 104, "--warp-factor"},
        BadInput{"BadFlagDuration", "export default () => {};\n", {"-d", "soon"}, 104, "--duration: invalid duration \"soon\""},
        BadInput{"BadStageFlag", "export default () => {};\n", {"--stage", "10s"}, 104, "--stage: expected DURATION:TARGET like 30s:10, got '10s'"},
        BadInput{"NoExports", "const x = 1;\n", {}, 104, "no exported functions in script"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

}  // namespace
}  // namespace barrage
