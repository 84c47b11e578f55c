// `barrage run` end to end: the real barrage and barrage-target binaries on
// loopback, each run bounded in time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
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

class RunTest : public testutil::TargetFixture {};

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
  // The running test's VUs, not 0 after it. A sample taken while the VUs
  // finish their last iterations may count fewer, as k6's (a 1 s ticker
  // reading the active VUs) does.
  EXPECT_GE(summary["metrics"]["vus"]["value"].get<int>(), 1);
  EXPECT_LE(summary["metrics"]["vus"]["value"].get<int>(), 10);
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

// Samples keep their series per call site (issue 14): a series kept from an
// earlier call must not be reused once the VU's tags, the group, the call's
// tags or the check change.
TEST_F(RunTest, KeptSeriesFollowTagGroupAndCheckChanges) {
  std::string export_path = dir_ + "/summary.json";
  std::string script = Write("series.js", R"(
import grpc from 'k6/net/grpc';
import { check, group } from 'k6';
import exec from 'k6/execution';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = {
  thresholds: {
    'grpc_reqs{phase:two}': ['count==6'], 'grpc_reqs{group:::g}': ['count==3'], 'grpc_reqs{k:v}': ['count==3'],
    'grpc_reqs{k:v,phase:two}': ['count==2'], 'iterations{phase:two}': ['count==2'],
    'checks{check:a}': ['rate==1'], 'checks{check:b}': ['rate==1'], 'checks{check:a,phase:two}': ['rate==1'],
  },
};
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  if (__ITER === 1) exec.vu.tags.phase = 'two';
  const say = () => client.invoke('hello.HelloService/SayHello', { greeting: 'x' });
  check(say(), { a: (r) => r.status === grpc.StatusOK });
  group('g', () => { say(); });
  check(client.invoke('hello.HelloService/SayHello', { greeting: 'y' }, { tags: { k: 'v' } }), { b: (r) => r.message.reply !== '' });
};
)");
  testutil::RunResult run = Barrage({"-q", "-i", "3", "-u", "1", "-e", "TARGET=" + address_, "--summary-export",
                                     export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  EXPECT_EQ(summary["metrics"]["grpc_reqs"]["count"].get<int>(), 9);
  EXPECT_EQ(summary["metrics"]["grpc_reqs{phase:two}"]["count"].get<int>(), 6);
  EXPECT_EQ(summary["metrics"]["grpc_reqs{group:::g}"]["count"].get<int>(), 3);
  EXPECT_EQ(summary["metrics"]["grpc_reqs{k:v,phase:two}"]["count"].get<int>(), 2);
  EXPECT_EQ(summary["metrics"]["iterations{phase:two}"]["count"].get<int>(), 2);
  EXPECT_EQ(summary["metrics"]["checks{check:a,phase:two}"]["passes"].get<int>(), 2);
  EXPECT_EQ(summary["metrics"]["checks{check:a}"]["passes"].get<int>(), 3);
  EXPECT_EQ(summary["metrics"]["checks{check:b}"]["passes"].get<int>(), 3);
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
export const options = { stages: [{ duration: '2s', target: 4 }, { duration: '2s', target: 0 }] };
let connected = false;
export default () => {
  if (!connected) { client.connect(__ENV.TARGET, { plaintext: true }); connected = true; }
  client.invoke('hello.HelloService/SayHello', { greeting: 'ramp' });
  sleep(0.01);
};
)");
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("* default: Up to 4 looping VUs for 4s over 2 stages (gracefulRampDown: 30s, gracefulStop: 30s)"));
  // --stage replaces the script's stages (a higher source wipes them).
  testutil::RunResult flags = Barrage({"-e", "TARGET=" + address_, "-s", "500ms:2", "-s", "500ms:0", script});
  EXPECT_EQ(flags.exit_code, 0) << flags.stderr_text;
  EXPECT_THAT(flags.stdout_text, HasSubstr("Up to 2 looping VUs for 1s over 2 stages"));
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  // vus is sampled once a second (as in k6) from the agents' progress
  // reports, so its max may miss the peak; the ramp is long enough that a
  // sample lands near it even on a loaded machine.
  EXPECT_GE(summary["metrics"]["vus"]["max"].get<int>(), 2);
  EXPECT_LE(summary["metrics"]["vus"]["max"].get<int>(), 4);
  EXPECT_EQ(summary["metrics"]["vus_max"]["value"].get<int>(), 4);
  EXPECT_GT(summary["metrics"]["iterations"]["count"].get<int>(), 20);
}

// Lines "TAG a b c" that the scripts below print with console.log, split.
std::vector<std::vector<std::string>> Records(const std::string& stderr_text, const std::string& tag) {
  std::vector<std::vector<std::string>> out;
  const std::string marker = tag + " ";
  for (size_t at = stderr_text.find(marker); at != std::string::npos; at = stderr_text.find(marker, at + 1)) {
    const size_t end = stderr_text.find_first_of("\"\n", at);
    std::vector<std::string> fields;
    std::istringstream in(stderr_text.substr(at + marker.size(), end - at - marker.size()));
    for (std::string f; in >> f;) fields.push_back(f);
    out.push_back(fields);
  }
  return out;
}

TEST_F(RunTest, ScenariosRunSideBySideWithTheirOwnEnvTagsAndExecutionState) {
  const std::string export_path = dir_ + "/summary.json";
  const std::string script = Write("scenarios.js", R"(
import exec from 'k6/execution';
import { check, sleep } from 'k6';
export const options = {
  scenarios: {
    first: { executor: 'per-vu-iterations', vus: 2, iterations: 3, maxDuration: '1s', gracefulStop: '500ms',
             exec: 'first', env: { WHO: 'first' }, tags: { kind: 'a' } },
    second: { executor: 'shared-iterations', vus: 2, iterations: 6, startTime: '1500ms', exec: 'second',
              env: { WHO: 'second' } },
  },
  thresholds: {
    'iterations{kind:a}': ['count==6'],
    'iterations{scenario:second}': ['count==6'],
    'iterations{custom:yes}': ['count==6'],
    'checks': ['rate==1'],
  },
};
function record() {
  console.log(`REC ${exec.scenario.name} ${exec.scenario.iterationInTest} ${exec.vu.idInInstance} ` +
              `${exec.vu.idInTest} ${exec.vu.iterationInScenario} ${__ENV.WHO} ${exec.scenario.startTime}`);
}
export function first() {
  record();
  check(null, {
    'env of the scenario': () => __ENV.WHO === 'first',
    'executor': () => exec.scenario.executor === 'per-vu-iterations',
    'test.options has the scenarios': () => exec.test.options.scenarios.second.startTime === '1.5s',
    'test.options is frozen': () => Object.isFrozen(exec.test.options.scenarios),
    'instance counters': () => exec.instance.vusInitialized === 2 && exec.instance.currentTestRunDuration >= 0,
  });
}
export function second() {
  record();
  exec.vu.tags.custom = 'yes';
  check(null, {
    'env of the scenario': () => __ENV.WHO === 'second',
    'the tag reads back': () => exec.vu.tags.custom === 'yes' && exec.vu.tags.scenario === 'second',
    'progress': () => exec.scenario.progress >= 0 && exec.scenario.progress <= 1,
  });
  let threw = false;
  try { exec.vu.tags.bad = { nested: true }; } catch (e) { threw = e instanceof TypeError; }
  check(null, { 'a non-scalar tag is a TypeError': () => threw });
  sleep(0.05);
}
)");
  testutil::RunResult run = Barrage({"--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 12);
  // The scenarios do not overlap (first ends at 1 s + 500 ms gracefulStop),
  // so second reuses first's two VUs.
  EXPECT_EQ(summary["metrics"]["vus_max"]["value"].get<int>(), 2);
  std::map<std::string, std::set<int>> in_test;
  std::map<std::string, std::set<std::string>> start_times;
  for (const auto& r : Records(run.stderr_text, "REC")) {
    ASSERT_EQ(r.size(), 7u);
    in_test[r[0]].insert(std::stoi(r[1]));
    EXPECT_EQ(r[2], r[3]) << "one instance: idInTest == idInInstance";
    EXPECT_EQ(r[5], r[0]) << "__ENV carries the scenario's env";
    start_times[r[0]].insert(r[6]);
  }
  EXPECT_EQ(in_test["first"], (std::set<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(in_test["second"], (std::set<int>{0, 1, 2, 3, 4, 5}));
  ASSERT_EQ(start_times["first"].size(), 1u);
  ASSERT_EQ(start_times["second"].size(), 1u);
  EXPECT_NEAR(std::stod(*start_times["second"].begin()) - std::stod(*start_times["first"].begin()), 1500, 50);
}

TEST_F(RunTest, ExecutionSegmentsSplitTheTestExactly) {
  const std::string script = Write("split.js", R"(
import exec from 'k6/execution';
export const options = { scenarios: {
  pool: { executor: 'shared-iterations', vus: 5, iterations: 100 },
  rate: { executor: 'constant-arrival-rate', rate: 60, timeUnit: '1s', duration: '1s', preAllocatedVUs: 4, exec: 'rate' },
} };
export default function () { console.log(`POOL ${exec.scenario.iterationInTest} ${exec.vu.idInTest}`); }
export function rate() { console.log(`RATE ${exec.scenario.iterationInTest} ${exec.vu.idInTest}`); }
)");
  const std::vector<std::string> segments = {"0:1/3", "1/3:2/3", "2/3:1"};
  std::vector<int> pool_seen, rate_seen;
  std::vector<int> vu_ids;  // distinct within each part, so all distinct means none shared
  int iterations = 0;
  for (const std::string& segment : segments) {
    const std::string export_path = dir_ + "/part.json";
    testutil::RunResult run = Barrage({"--execution-segment", segment, "--execution-segment-sequence", "0,1/3,2/3,1",
                                       "--summary-export", export_path, script});
    ASSERT_EQ(run.exit_code, 0) << segment << run.stderr_text;
    EXPECT_THAT(run.stdout_text, HasSubstr("scenarios: (33.33%) 2 scenarios"));
    iterations += nlohmann::json::parse(std::ifstream(export_path))["metrics"]["iterations"]["count"].get<int>();
    std::set<int> part_ids;
    for (const auto& r : Records(run.stderr_text, "POOL")) {
      pool_seen.push_back(std::stoi(r[0]));
      part_ids.insert(std::stoi(r[1]));
    }
    for (const auto& r : Records(run.stderr_text, "RATE")) {
      rate_seen.push_back(std::stoi(r[0]));
      part_ids.insert(std::stoi(r[1]));
    }
    vu_ids.insert(vu_ids.end(), part_ids.begin(), part_ids.end());
  }
  // The parts add up exactly to the whole, each global iteration once.
  EXPECT_EQ(iterations, 160);
  std::sort(pool_seen.begin(), pool_seen.end());
  std::sort(rate_seen.begin(), rate_seen.end());
  std::vector<int> want_pool(100), want_rate(60);
  std::iota(want_pool.begin(), want_pool.end(), 0);
  std::iota(want_rate.begin(), want_rate.end(), 0);
  EXPECT_EQ(pool_seen, want_pool);
  EXPECT_EQ(rate_seen, want_rate);
  // exec.vu.idInTest: no two parts use the same number. Each part has the
  // pool's and the arrival scenario's VUs (they overlap): 5 + 4 in all.
  std::sort(vu_ids.begin(), vu_ids.end());
  EXPECT_EQ(std::adjacent_find(vu_ids.begin(), vu_ids.end()), vu_ids.end());
  EXPECT_LE(vu_ids.size(), 9u);
}

TEST_F(RunTest, RampingArrivalRateStartsItsCurvesIterations) {
  const std::string export_path = dir_ + "/summary.json";
  const std::string script = Write("ramp.js", R"(
import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { scenarios: { ramp: { executor: 'ramping-arrival-rate', startRate: 0, timeUnit: '1s',
  preAllocatedVUs: 4, maxVUs: 10, stages: [{ duration: '1s', target: 100 }, { duration: '1s', target: 100 }] } } };
let connected = false;
export default () => {
  if (!connected) { client.connect(__ENV.TARGET, { plaintext: true }); connected = true; }
  client.invoke('hello.HelloService/SayHello', { greeting: 'ramp' });
};
)");
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text,
              HasSubstr("* ramp: Up to 100.00 iterations/s for 2s over 2 stages (maxVUs: 4-10, gracefulStop: 30s)"));
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  const int iterations = summary["metrics"]["iterations"]["count"].get<int>();
  const int dropped = summary["metrics"].contains("dropped_iterations")
                          ? summary["metrics"]["dropped_iterations"]["count"].get<int>() : 0;
  EXPECT_EQ(iterations + dropped, 150);  // 50 on the ramp, 100 at the plateau
  EXPECT_GE(iterations, 145);
}

TEST_F(RunTest, InspectPrintsTheResolvedOptions) {
  const std::string script = Write("inspect.js", R"(
export const options = { stages: [{ duration: '10s', target: 5 }], thresholds: { checks: ['rate>0.9'] } };
export default () => {};
)");
  testutil::RunResult run = testutil::Run(testutil::BinaryPath("barrage"), {"inspect", script}, 30s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  nlohmann::json j = nlohmann::json::parse(run.stdout_text);
  EXPECT_EQ(j["scenarios"]["default"]["executor"], "ramping-vus");
  EXPECT_EQ(j["scenarios"]["default"]["startVUs"], 1);
  EXPECT_EQ(j["scenarios"]["default"]["stages"][0]["target"], 5);
  EXPECT_EQ(j["thresholds"]["checks"][0], "rate>0.9");
  EXPECT_FALSE(j.contains("stages"));
  EXPECT_FALSE(j.contains("maxVUs"));
  // Flags override as in `run`; --execution-requirements adds maxVUs and totalDuration.
  run = testutil::Run(testutil::BinaryPath("barrage"),
                      {"inspect", "-u", "7", "-d", "20s", "--execution-requirements", script}, 30s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  j = nlohmann::json::parse(run.stdout_text);
  EXPECT_EQ(j["scenarios"]["default"]["executor"], "constant-vus");
  EXPECT_EQ(j["maxVUs"], 7);
  EXPECT_EQ(j["totalDuration"], "50s");
  run = testutil::Run(testutil::BinaryPath("barrage"),
                      {"inspect", "--execution-segment", "0:1/2", "-u", "7", "-d", "20s", "--execution-requirements", script}, 30s);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(nlohmann::json::parse(run.stdout_text)["maxVUs"], 4);
}

TEST_F(RunTest, TestFailExits110AfterTheWholeRun) {
  const std::string script = Write("fail.js", R"(
import exec from 'k6/execution';
export const options = { iterations: 3 };
export default () => { if (exec.scenario.iterationInTest === 1) exec.test.fail('the second one'); };
)");
  testutil::RunResult run = Barrage({script});
  EXPECT_EQ(run.exit_code, 110) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("test marked as failed: the second one"));
  EXPECT_THAT(run.stdout_text, HasSubstr("3 complete and 0 interrupted iterations"));
}

TEST_F(RunTest, OutJsonAndCsvHoldSamplesThatAddUpToTheSummary) {
  const std::string script = Write("out.js", R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '3s' } } };
let connected = false;
export default () => {
  if (!connected) { client.connect(__ENV.TARGET, { plaintext: true }); connected = true; }
  check(client.invoke('hello.HelloService/SayHello', { greeting: 'out' }), { 'ok': (r) => r.status === grpc.StatusOK });
};
)");
  const std::string json_path = dir_ + "/points.json", csv_path = dir_ + "/points.csv", export_path = dir_ + "/s.json";
  testutil::RunResult run = Barrage({"-e", "TARGET=" + address_, "--out", "json=" + json_path, "--out", "csv=" + csv_path,
                                     "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const int iterations = nlohmann::json::parse(std::ifstream(export_path))["metrics"]["iterations"]["count"].get<int>();
  std::ifstream json(json_path);
  std::set<std::string> described;
  double json_iterations = 0;
  int points = 0;
  for (std::string line; std::getline(json, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    const std::string metric = j["metric"];
    if (j["type"] == "Metric") {
      EXPECT_EQ(j["data"]["name"], metric);
      described.insert(metric);
      continue;
    }
    ASSERT_EQ(j["type"], "Point");
    EXPECT_TRUE(described.count(metric)) << metric << " has a point before its Metric line";
    EXPECT_TRUE(j["data"]["time"].is_string());
    ++points;
    if (metric == "iterations") json_iterations += j["data"]["value"].get<double>();
  }
  EXPECT_GT(points, 10);
  EXPECT_EQ(json_iterations, iterations);
  std::ifstream csv(csv_path);
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("metric_name,timestamp,metric_value,check,", 0), 0u) << header;
  double csv_iterations = 0;
  for (std::string line; std::getline(csv, line);) {
    if (line.rfind("iterations,", 0) == 0) csv_iterations += std::stod(line.substr(line.find(',', 11) + 1));
  }
  EXPECT_EQ(csv_iterations, iterations);
  run = Barrage({"--out", "json=/nonexistent-dir/x.json", script});
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("--out json: cannot write /nonexistent-dir/x.json"));
  run = Barrage({"--out", "influxdb=http://x", script});
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("--out: unknown output 'influxdb' (json=FILE or csv=FILE)"));
}

TEST_F(RunTest, HandleSummaryWritesItsOutputsAndTextSummaryIsBuiltIn) {
  const std::string out_file = dir_ + "/custom.json";
  const std::string script = Write("hs.js", R"(
import { textSummary } from 'https://jslib.k6.io/k6-summary/0.0.2/index.js';
export const options = { iterations: 4, thresholds: { iterations: ['count==4'] } };
export default () => {};
export function handleSummary(data) {
  const out = { stdout: 'CUSTOM SUMMARY\n' + textSummary(data, { indent: '> ', enableColors: false }) };
  out[__ENV.OUT] = JSON.stringify({ iterations: data.metrics.iterations.values.count,
                                    passed: data.metrics.iterations.thresholds['count==4'].ok,
                                    stdoutTTY: data.state.isStdOutTTY });
  return out;
}
)");
  for (const std::string mode : {"embedded", "agents"}) {
    std::vector<std::string> args = {"-q", "-e", "OUT=" + out_file, script};
    if (mode == "agents") args.insert(args.begin(), {"--agents", "2"});
    std::filesystem::remove(out_file);
    testutil::RunResult run = Barrage(args);
    ASSERT_EQ(run.exit_code, 0) << mode << run.stderr_text;
    EXPECT_THAT(run.stdout_text, HasSubstr("CUSTOM SUMMARY\n")) << mode;
    EXPECT_THAT(run.stdout_text, HasSubstr(">   █ TOTAL RESULTS")) << mode;
    EXPECT_EQ(run.stdout_text.find("\n  █ TOTAL RESULTS"), std::string::npos) << "the default summary is replaced";
    nlohmann::json written = nlohmann::json::parse(std::ifstream(out_file));
    EXPECT_EQ(written["iterations"], 4) << mode;
    EXPECT_EQ(written["passed"], true) << mode;
    EXPECT_EQ(written["stdoutTTY"], false) << mode;
  }
}

TEST_F(RunTest, AFailingHandleSummaryFallsBackToTheDefaultSummary) {
  testutil::RunResult run = Barrage({"-q", Write("hs1.js", "export default () => {};\n"
                                                           "export function handleSummary() { throw new Error('boom'); }\n")});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.stderr_text, HasSubstr("handleSummary() failed: Error: boom"));
  EXPECT_THAT(run.stdout_text, HasSubstr("TOTAL RESULTS"));
  // k6: something other than an object is an error and nothing is printed;
  // undefined or null means the default summary, with nothing logged.
  run = Barrage({"-q", Write("hs2.js", "export default () => {};\nexport function handleSummary() { return 5; }\n")});
  EXPECT_THAT(run.stderr_text, HasSubstr("handleSummary() should return a map with string keys"));
  EXPECT_THAT(run.stdout_text, Not(HasSubstr("TOTAL RESULTS")));
  run = Barrage({"-q", Write("hs4.js", "export default () => {};\nexport function handleSummary() { return null; }\n")});
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("handleSummary")));
  EXPECT_THAT(run.stdout_text, HasSubstr("TOTAL RESULTS"));
  run = Barrage({"-q", Write("hs3.js", "export default () => {};\n"
                                       "export function handleSummary() { return { '/nonexistent-dir/x.txt': 'x' }; }\n")});
  EXPECT_THAT(run.stderr_text, HasSubstr("handleSummary(): cannot write /nonexistent-dir/x.txt"));
}

// k6's handleSummary values: strings and ArrayBuffers (bytes as they are,
// NUL and 0xFF included); any other value is k6's error for that key, and
// then no output at all is written (k6 checks them all first).
TEST_F(RunTest, HandleSummaryWritesArrayBufferBytesAndRefusesOtherTypesWithK6sText) {
  testutil::RunResult run = Barrage({"-q", Write("hs_bytes.js", R"(export default () => {};
export function handleSummary() {
  return { [__ENV.DIR + '/bytes.bin']: new Uint8Array([104, 105, 0, 255]).buffer, [__ENV.DIR + '/text.txt']: 'ok 😀' };
}
)"), "-e", "DIR=" + dir_});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  std::ifstream bytes(dir_ + "/bytes.bin", std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(bytes)), std::istreambuf_iterator<char>()),
            std::string("hi\0\xff", 4));
  std::ifstream text(dir_ + "/text.txt");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>()), "ok 😀");

  for (const auto& [value, type] : std::vector<std::pair<std::string, std::string>>{
           {"42", "int64"}, {"1.5", "float64"}, {"true", "bool"}, {"null", "<nil>"}, {"{ a: 1 }", "map[string]interface {}"},
           {"[1]", "[]interface {}"}}) {
    run = Barrage({"-q", Write("hs_bad.js", "export default () => {};\nexport function handleSummary() { return { [__ENV.DIR + "
                                            "'/good.txt']: 'x', 'bad.txt': " + value + " }; }\n"), "-e", "DIR=" + dir_});
    EXPECT_EQ(run.exit_code, 0) << value;
    EXPECT_THAT(run.stderr_text, HasSubstr("failed to handle the end-of-test summary")) << value;
    EXPECT_THAT(run.stderr_text, HasSubstr("error handling summary object bad.txt: invalid type " + type +
                                           ", it needs to be a string or ArrayBuffer")) << value;
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/good.txt")) << value;
  }
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
        BadInput{"NoExports", "const x = 1;\n", {}, 104, "no exported functions in script"},
        BadInput{"ParameterOfAnotherExecutor", "export const options = { scenarios: { s: { executor: 'constant-vus', duration: '5s', rate: 3 } } };\nexport default () => {};\n", {}, 104, "options.scenarios.s: unknown field 'rate' for executor constant-vus"},
        BadInput{"ZeroRate", "export const options = { scenarios: { r: { executor: 'constant-arrival-rate', rate: 0, duration: '5s', preAllocatedVUs: 1 } } };\nexport default () => {};\n", {}, 104, "scenario 'r': rate must be greater than 0, got 0"},
        BadInput{"ZeroDuration", "export const options = { scenarios: { c: { executor: 'constant-vus', vus: 1, duration: '0s' } } };\nexport default () => {};\n", {}, 104, "scenario 'c': duration must be at least 1s, got 0s"},
        BadInput{"NegativeStageTarget", "export const options = { scenarios: { v: { executor: 'ramping-vus', stages: [{ duration: '1s', target: -1 }] } } };\nexport default () => {};\n", {}, 104, "options.scenarios.v.stages[0].target: must not be negative, got -1"},
        BadInput{"RampingArrivalRateWithoutStages", "export const options = { scenarios: { r: { executor: 'ramping-arrival-rate', preAllocatedVUs: 1 } } };\nexport default () => {};\n", {}, 104, "options.scenarios.r.stages: required for ramping-arrival-rate"},
        BadInput{"NegativeStartTime", "export const options = { scenarios: { c: { executor: 'constant-vus', vus: 1, duration: '1s', startTime: '-1s' } } };\nexport default () => {};\n", {}, 104, "scenario 'c': startTime must not be negative, got -1s"},
        BadInput{"ExternallyControlled", "export const options = { scenarios: { e: { executor: 'externally-controlled', vus: 1, duration: '1s' } } };\nexport default () => {};\n", {}, 104, "the externally-controlled executor is not supported"},
        BadInput{"MissingExecFunction", "export const options = { scenarios: { c: { executor: 'constant-vus', vus: 1, duration: '1s', exec: 'nope' } } };\nexport default () => {};\n", {}, 104, "scenario 'c': exec: function 'nope' not found"},
        BadInput{"BadSegmentFlag", "export default () => {};\n", {"--execution-segment", "2/3:1/3"}, 104, "--execution-segment: "},
        BadInput{"SegmentOutsideTheSequence", "export default () => {};\n", {"--execution-segment", "0:1/3", "--execution-segment-sequence", "0,1/2,1"}, 104, "execution segment 0:1/3 is not one of the segments of the sequence 0,1/2,1"},
        BadInput{"UnorderedSequence", "export const options = { executionSegmentSequence: '0,2/3,1/3,1' };\nexport default () => {};\n", {}, 104, "options.executionSegmentSequence: "},
        BadInput{"SegmentOutOfRange", "export const options = { executionSegment: '1/2:3/2' };\nexport default () => {};\n", {}, 104, "options.executionSegment: "}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

}  // namespace
}  // namespace barrage
