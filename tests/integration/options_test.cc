// The options, flags and K6_* variables k6 v1.x users pass (issue 12, item
// 3), each with a real `barrage run` against barrage-target on loopback:
// what it does, its precedence where it has sources, and the 104 naming the
// flag and the value when it is bad.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// One unary call a iteration, a check and a group; the target from -e.
constexpr char kUnary[] = R"(import grpc from 'k6/net/grpc';
import { check, group } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { iterations: 2 };
export default function () {
  client.connect(__ENV.TARGET, { plaintext: true });
  group('g1', () => {
    const r = client.invoke('hello.HelloService/SayHello', { greeting: 'x' }, { metadata: { 'x-echo-a': '1' } });
    check(r, { 'status is OK': (r) => r.status === grpc.StatusOK });
    console.log('ua=' + r.headers['x-user-agent']);
  });
  client.close();
}
)";

class OptionsTest : public testutil::TargetFixture {
 protected:
  testutil::RunResult Run(std::vector<std::string> args, const testutil::EnvExtra& env = {},
                          const std::string& stdin_text = "") {
    args.insert(args.begin(), "run");
    return testutil::Run(testutil::BinaryPath("barrage"), args, 60s, env, stdin_text);
  }
  std::string Unary() { return Write("unary.js", kUnary); }
  std::vector<std::string> Target() { return {"-e", "TARGET=" + address_}; }
  static std::vector<std::string> Cat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  std::string ReadText(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // A second barrage-target with extra flags, stopped with the fixture.
  std::string StartTarget(std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"--listen", "127.0.0.1:0"});
    auto target = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), flags);
    absl::StatusOr<std::string> address = target->WaitForAddress(10s);
    EXPECT_TRUE(address.ok()) << address.status();
    more_targets_.push_back(std::move(target));
    return address.ok() ? *address : "";
  }
  // The tag keys grpc_req_duration points carry in an --out json file.
  std::set<std::string> RequestTagKeys(const std::string& json_path) {
    std::set<std::string> keys;
    std::ifstream in(json_path);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["type"] != "Point" || j["metric"] != "grpc_req_duration") continue;
      for (const auto& [k, v] : j["data"]["tags"].items()) keys.insert(k);
    }
    return keys;
  }
  std::vector<std::unique_ptr<testutil::ChildProcess>> more_targets_;
};

// ---------------------------------------------------------------- summary

TEST_F(OptionsTest, SummaryModeFullAddsGroupSections) {
  testutil::RunResult run = Run(Cat(Target(), {"--summary-mode", "full", Unary()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("█ GROUP: g1"));
  // And from K6_SUMMARY_MODE when the flag is not given; the flag wins.
  run = Run(Cat(Target(), {Unary()}), {{"K6_SUMMARY_MODE", "full"}});
  EXPECT_THAT(run.stdout_text, HasSubstr("█ GROUP: g1"));
  run = Run(Cat(Target(), {"--summary-mode", "compact", Unary()}), {{"K6_SUMMARY_MODE", "full"}});
  EXPECT_THAT(run.stdout_text, AllOf(HasSubstr("█ TOTAL RESULTS"), Not(HasSubstr("█ GROUP: g1"))));
}

TEST_F(OptionsTest, SummaryModeLegacyIsK6sPreOneLayout) {
  testutil::RunResult run = Run(Cat(Target(), {"--summary-mode", "legacy", Unary()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  // Group titles and checks first, then one flat list with checks in it.
  EXPECT_THAT(run.stdout_text, HasSubstr("     █ g1\n\n       ✓ status is OK\n"));
  EXPECT_THAT(run.stdout_text, HasSubstr("     checks..."));
  EXPECT_THAT(run.stdout_text, HasSubstr("100.00% 2 out of 2"));
  EXPECT_THAT(run.stdout_text, Not(HasSubstr("TOTAL RESULTS")));
  EXPECT_THAT(run.stderr_text, HasSubstr("The \\\"legacy\\\" summary mode has been deprecated"));
}

TEST_F(OptionsTest, SummaryModeDisabledSkipsSummaryHandleSummaryAndExport) {
  const std::string script = Write("hs.js", R"(export const options = { iterations: 1 };
export default function () {}
export function handleSummary() { return { stdout: 'HANDLED\n' }; }
)");
  const std::string export_path = dir_ + "/s.json";
  testutil::RunResult run = Run({"--summary-mode", "disabled", "--summary-export", export_path, script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, AllOf(Not(HasSubstr("HANDLED")), Not(HasSubstr("TOTAL RESULTS"))));
  EXPECT_FALSE(std::filesystem::exists(export_path));
  // --no-summary is the same, with k6's deprecation notice.
  run = Run({"--no-summary", script});
  EXPECT_THAT(run.stdout_text, Not(HasSubstr("HANDLED")));
  EXPECT_THAT(run.stderr_text, HasSubstr("Flag --no-summary has been deprecated, use --summary-mode=disabled instead"));
}

TEST_F(OptionsTest, BadRuntimeSettingsExit104NamingFlagAndValue) {
  const std::string script = Write("s.js", "export default function () {}\n");
  struct Case {
    std::vector<std::string> args;
    testutil::EnvExtra env;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"--summary-mode", "fancy"}, {}, "--summary-mode (K6_SUMMARY_MODE): invalid summary mode 'fancy'"},
      {{}, {{"K6_SUMMARY_MODE", "fancy"}}, "invalid summary mode 'fancy'"},
      {{"--log-format", "xml"}, {}, "--log-format (K6_LOG_FORMAT): unknown log format 'xml'"},
      {{"--log-output", "loki=http://x"}, {}, "--log-output (K6_LOG_OUTPUT): unsupported log output 'loki=http://x'"},
      {{"--log-output", "file=" + dir_ + "/l.log,level=loud"}, {}, "unknown log level loud"},
      {{"--compatibility-mode", "es3"}, {}, "invalid compatibility mode \\\"es3\\\". Use: \\\"extended\\\", \\\"base\\\""},
      {{}, {{"K6_COMPATIBILITY_MODE", "experimental_enhanced"}}, "experimental_enhanced (TypeScript through esbuild)"},
      {{"--min-iteration-duration", "soon"}, {}, "--min-iteration-duration: expected a duration like 500ms, got 'soon'"},
      {{}, {{"K6_MIN_ITERATION_DURATION", "soon"}}, "K6_MIN_ITERATION_DURATION"},
      {{}, {{"K6_INSECURE_SKIP_TLS_VERIFY", "maybe"}}, "K6_INSECURE_SKIP_TLS_VERIFY: not a boolean (true or false): maybe"},
      {{}, {{"K6_NO_SUMMARY", "maybe"}}, "env var 'K6_NO_SUMMARY' is not a valid boolean value: 'maybe'"},
      {{}, {{"K6_HANDLE_SUMMARY_TIMEOUT", "later"}}, "K6_HANDLE_SUMMARY_TIMEOUT"},
      {{"-i", "18446744073709551615"}, {},
       "invalid argument \\\"18446744073709551615\\\" for \\\"-i, --iterations\\\" flag: value out of range"},
      {{"-u", "many"}, {}, "invalid argument \\\"many\\\" for \\\"-u, --vus\\\" flag: not an integer"},
      {{"--threads", "100000"}, {}, "--threads: 100000 is out of range"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.push_back(script);
    testutil::RunResult run = Run(args, c.env);
    EXPECT_EQ(run.exit_code, 104) << absl::StrJoin(c.args, " ") << "\n" << run.stderr_text;
    EXPECT_THAT(run.stderr_text, HasSubstr(c.want)) << absl::StrJoin(c.args, " ");
  }
}

TEST_F(OptionsTest, MoreVusThanMemoryHoldsAre104NotAnOomKill) {
  const std::string script = Write("s.js", "export default function () {}\n");
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run = Run({"-u", "2147483648", "-d", "1s", script});
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, AllOf(HasSubstr("2147483648 VUs"), HasSubstr("MemAvailable"),
                                     HasSubstr("--vus-memory-check=false")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  // Within what the machine holds, the check is silent.
  run = Run({"-u", "3", "-i", "3", script});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
}

TEST_F(OptionsTest, RemoteAgentsRefuseVusTheirMemoryCannotHold) {
  const std::string script = Write("s.js", "export default function () {}\n");
  // The controller with --listen does not check (the VUs are elsewhere);
  // the agent checks its own share and the run is a 104 naming it.
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"),
      {"run", "--listen", "127.0.0.1:0", "--expect-agents", "1", "--agent-timeout", "20s", "-u", "2147483648", "-d",
       "1s", script});
  absl::StatusOr<std::string> line = controller->WaitForLine("control plane listening on ([0-9.:]+)", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const size_t at = line->find("listening on ") + 13;
  const std::string address = line->substr(at, line->find_first_of(", ", at) - at);
  auto agent = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-agent"),
                                             {"--controller", address, "--once", "--name", "small"});
  EXPECT_EQ(controller->Wait(60s), 104) << controller->stderr_text();
  EXPECT_THAT(controller->stderr_text(), AllOf(HasSubstr("agent small"), HasSubstr("2147483648 VUs"),
                                               HasSubstr("MemAvailable")));
}

// ---------------------------------------------------------------- logging

TEST_F(OptionsTest, LogFormatJsonAndRaw) {
  testutil::RunResult run = Run(Cat(Target(), {"-q", "--log-format", "json", Unary()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  bool console_line = false;
  for (absl::string_view line : absl::StrSplit(run.stderr_text, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_TRUE(j.contains("level") && j.contains("msg") && j.contains("time")) << line;
    if (j.value("source", "") == "console") console_line = j["msg"].get<std::string>().rfind("ua=", 0) == 0;
  }
  EXPECT_TRUE(console_line) << run.stderr_text;
  run = Run(Cat(Target(), {"-q", "--summary-mode", "disabled", Unary()}), {{"K6_LOG_FORMAT", "raw"}});
  EXPECT_THAT(run.stderr_text, HasSubstr("\nua=Barrage/"));  // the message alone, no time= or level=
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("level=")));
}

TEST_F(OptionsTest, LogOutputAndConsoleOutput) {
  // stdout: the log moves there.
  testutil::RunResult run = Run(Cat(Target(), {"-q", "--log-output", "stdout", Unary()}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("msg=\"ua=Barrage/"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("ua=")));
  // none: no log at all.
  run = Run(Cat(Target(), {"-q", "--log-output", "none", Unary()}));
  EXPECT_THAT(run.stdout_text + run.stderr_text, Not(HasSubstr("ua=")));
  // file=PATH,level=warning: appended, info lines left out.
  const std::string log = dir_ + "/k6.log";
  run = Run({"-q", "--log-output", "file=" + log + ",level=warning",
             Write("warn.js", "export const options = { iterations: 1 };\n"
                              "export default function () { console.warn('careful'); console.log('chatty'); }\n")});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(ReadText(log), AllOf(HasSubstr("level=warning msg=careful"), Not(HasSubstr("chatty"))));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("careful")));
  // --console-output: console lines to the file, without source=console;
  // the rest of the log stays on stderr. K6_CONSOLE_OUTPUT does the same.
  const std::string console = dir_ + "/console.log";
  run = Run(Cat(Target(), {"-q", "--console-output", console, Unary()}));
  EXPECT_THAT(ReadText(console), AllOf(HasSubstr("msg=\"ua=Barrage/"), Not(HasSubstr("source=console"))));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("ua=")));
  const std::string console2 = dir_ + "/console2.log";
  run = Run(Cat(Target(), {"-q", Unary()}), {{"K6_CONSOLE_OUTPUT", console2}});
  EXPECT_THAT(ReadText(console2), HasSubstr("ua=Barrage/"));
}

// ------------------------------------------------------- tags and requests

TEST_F(OptionsTest, SystemTagsChooseTheTagsSamplesCarry) {
  const std::string script = Unary();
  const std::string all = dir_ + "/all.json", few = dir_ + "/few.json", env = dir_ + "/env.json";
  testutil::RunResult run = Run(Cat(Target(), {"-q", "--out", "json=" + all, script}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  // Never expected_response on gRPC samples (spec §2.1), although it is a
  // default system tag.
  EXPECT_EQ(RequestTagKeys(all),
            (std::set<std::string>{"group", "method", "name", "scenario", "service", "status", "url"}));
  // --system-tags replaces the set; the test's own tags stay.
  run = Run(Cat(Target(), {"-q", "--system-tags", "status,method", "--tag", "team=a", "--out", "json=" + few, script}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(RequestTagKeys(few), (std::set<std::string>{"method", "status", "team"}));
  // K6_SYSTEM_TAGS; the script's systemTags option is lower than the variable.
  const std::string with_option = Write(
      "opt.js", std::string(kUnary).replace(std::string(kUnary).find("iterations: 2"), 13,
                                            "iterations: 2, systemTags: ['url']"));
  run = Run(Cat(Target(), {"-q", "--out", "json=" + env, with_option}), {{"K6_SYSTEM_TAGS", "scenario"}});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(RequestTagKeys(env), (std::set<std::string>{"scenario"}));
}

TEST_F(OptionsTest, UserAgentIsTheGrpcUserAgentPrefix) {
  const std::string script = Unary();
  // Default: Barrage/<version>, then gRPC's own.
  testutil::RunResult run = Run(Cat(Target(), {"-q", script}));
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("ua=Barrage/0.1.0 grpc-c++/"));
  // The option, then K6_USER_AGENT over it, then the flag over both.
  const std::string with_option = Write(
      "ua.js", std::string(kUnary).replace(std::string(kUnary).find("iterations: 2"), 13,
                                           "iterations: 2, userAgent: 'from-options/1'"));
  run = Run(Cat(Target(), {"-q", with_option}));
  EXPECT_THAT(run.stderr_text, HasSubstr("ua=from-options/1 grpc-c++/"));
  run = Run(Cat(Target(), {"-q", with_option}), {{"K6_USER_AGENT", "from-env/2"}});
  EXPECT_THAT(run.stderr_text, HasSubstr("ua=from-env/2 grpc-c++/"));
  run = Run(Cat(Target(), {"-q", "--user-agent", "from-flag/3", with_option}), {{"K6_USER_AGENT", "from-env/2"}});
  EXPECT_THAT(run.stderr_text, HasSubstr("ua=from-flag/3 grpc-c++/"));
}

TEST_F(OptionsTest, MinIterationDurationPadsShortIterations) {
  const std::string script = Write("short.js", "export default function () {}\n");
  const std::string export_path = dir_ + "/s.json";
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run =
      Run({"-q", "-u", "1", "-i", "3", "--min-iteration-duration", "700ms", "--summary-export", export_path, script});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_GE(took, 2100ms);  // three iterations, each padded to 700 ms
  // iteration_duration leaves the padding out, as in k6.
  const nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  EXPECT_LT(summary["metrics"]["iteration_duration"]["max"].get<double>(), 500);
  EXPECT_EQ(summary["metrics"]["iterations"]["count"].get<int>(), 3);
  // The padding is interruptible: gracefulStop ends it.
  const std::string scenario = Write("stop.js", R"(export const options = {
  minIterationDuration: '60s',
  scenarios: { s: { executor: 'constant-vus', vus: 1, duration: '1s', gracefulStop: '0s' } },
};
export default function () {}
)");
  const auto start2 = std::chrono::steady_clock::now();
  run = Run({"-q", scenario});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_LT(std::chrono::steady_clock::now() - start2, 15s);
}

TEST_F(OptionsTest, HandleSummaryTimeoutFromTheEnvironment) {
  const std::string script = Write("slow.js", R"(export const options = { iterations: 1 };
export default function () {}
export async function handleSummary() {
  await new Promise((resolve) => setTimeout(resolve, 20000));
  return { stdout: 'LATE\n' };
}
)");
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run = Run({"-q", script}, {{"K6_HANDLE_SUMMARY_TIMEOUT", "1s"}});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
  EXPECT_THAT(run.stderr_text, HasSubstr("handleSummary() execution timed out after 1s"));
  EXPECT_THAT(run.stdout_text, AllOf(Not(HasSubstr("LATE")), HasSubstr("TOTAL RESULTS")));  // the default summary
}

// ---------------------------------------------------------------- scripts

TEST_F(OptionsTest, ScriptFromStdinResolvesAgainstTheCurrentDirectory) {
  Write("lib.js", "export const greeting = 'from lib';\n");
  const std::string source = R"(import { greeting } from './lib.js';
export const options = { iterations: 1 };
export default function () { console.log(greeting + ' ' + __ENV.X); }
)";
  testutil::RunResult run = testutil::Run(
      "/bin/sh", {"-c", "cd \"$0\" && exec \"$1\" run -q -e X=yes -", dir_, testutil::BinaryPath("barrage")}, 60s, {},
      source);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("from lib yes"));
}

TEST_F(OptionsTest, CompatibilityModeBaseRunsEs5AsWritten) {
  const std::string es5 = Write("es5.js", R"(var k6 = require('k6');
exports.options = { iterations: 2 };
exports.default = function () { k6.check(1, { 'one is one': function (v) { return v === 1; } }); };
)");
  testutil::RunResult run = Run({"--compatibility-mode", "base", es5});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("✓ one is one"));
  // ES2015 syntax is a syntax error naming file:line, as Babel is skipped.
  const std::string es6 = Write("es6.js", "var k6 = require('k6');\n\nexports.default = () => {\n  let x = 1;\n};\n");
  run = Run({"--compatibility-mode", "base", es6});
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr(dir_ + "/es6.js:3: SyntaxError"));
  run = Run({es6}, {{"K6_COMPATIBILITY_MODE", "base"}});
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
  // extended (the default) transforms it.
  EXPECT_EQ(Run({es6}).exit_code, 0);
}

TEST_F(OptionsTest, RepeatableFlagsTakeOneValueEachOnEverySubcommand) {
  const std::string script = Write("env.js", "export const options = { iterations: 1 };\n"
                                             "export default function () { console.log(__ENV.X + __ENV.Y); }\n");
  const std::string archive = dir_ + "/a.tar";
  testutil::RunResult pack = testutil::Run(testutil::BinaryPath("barrage"),
                                           {"archive", "-O", archive, "-e", "X=1", "-e", "Y=2", script}, 60s);
  ASSERT_EQ(pack.exit_code, 0) << pack.stderr_text;
  testutil::RunResult run = Run({"-q", archive});
  EXPECT_THAT(run.stderr_text, HasSubstr("msg=12"));
  testutil::RunResult inspect =
      testutil::Run(testutil::BinaryPath("barrage"), {"inspect", "-e", "X=1", "--tag", "a=b", script}, 60s);
  EXPECT_EQ(inspect.exit_code, 0) << inspect.stderr_text;
}

// ------------------------------------------------------------- exec.test

TEST_F(OptionsTest, TestOptionsHaveEveryKeyK6Fills) {
  const std::string script = Write("opts.js", R"(import exec from 'k6/execution';
export const options = { iterations: 1, rps: 50, userAgent: 'me' };
export default function () { console.log(JSON.stringify(exec.test.options)); }
)");
  testutil::RunResult run = Run({"-q", "--log-format", "raw", script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const nlohmann::json o = nlohmann::json::parse(run.stderr_text.substr(run.stderr_text.find('{')));
  for (const char* key : {"paused", "executionSegment", "executionSegmentSequence", "noSetup", "setupTimeout",
                          "noTeardown", "teardownTimeout", "rps", "dns", "maxRedirects", "userAgent", "batch",
                          "batchPerHost", "httpDebug", "insecureSkipTLSVerify", "tlsCipherSuites", "tlsVersion",
                          "tlsAuth", "throw", "thresholds", "blacklistIPs", "blockHostnames", "hosts",
                          "noConnectionReuse", "noVUConnectionReuse", "minIterationDuration", "ext",
                          "summaryTrendStats", "summaryTimeUnit", "systemTags", "tags", "metricSamplesBufferSize",
                          "noCookiesReset", "discardResponseBodies", "consoleOutput", "scenarios", "localIPs"}) {
    EXPECT_TRUE(o.contains(key)) << key;
  }
  EXPECT_FALSE(o.contains("vus"));
  EXPECT_EQ(o["rps"], 50);
  EXPECT_EQ(o["userAgent"], "me");
  EXPECT_EQ(o["summaryTrendStats"], nlohmann::json::parse(R"j(["avg","min","med","max","p(90)","p(95)"])j"));
  EXPECT_EQ(o["systemTags"].size(), 14u);
  EXPECT_EQ(o["dns"], nlohmann::json::parse(R"({"ttl":null,"select":null,"policy":null})"));
}

TEST_F(OptionsTest, AbortInAVusInitExits108AndStillRunsHandleSummary) {
  const std::string script = Write("abort.js", R"(import exec from 'k6/execution';
if (__VU === 2) {
  if (__ENV.MODE === 'abort') exec.test.abort('stop it');
  throw new Error('oops');
}
export const options = { vus: 3, iterations: 3 };
export default function () {}
export function handleSummary(data) { return { stdout: 'HANDLED\n' }; }
)");
  testutil::RunResult run = Run({"-q", "-e", "MODE=abort", script});
  EXPECT_EQ(run.exit_code, 108) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("HANDLED"));
  EXPECT_THAT(run.stderr_text, AllOf(HasSubstr("test aborted: stop it"), HasSubstr("hint=\"error while initializing VU #2\"")));
  // An exception there: 107, k6's hint and the JS stack instead of "VU 2 init:".
  run = Run({"-q", script});
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("HANDLED"));
  EXPECT_THAT(run.stderr_text, AllOf(HasSubstr("msg=\"Error: oops\\n    at "), HasSubstr("abort.js:"),
                                     HasSubstr("hint=\"error while initializing VU #2 (script exception)\""),
                                     Not(HasSubstr("VU 2 init"))));
  // Over agents too: the agent whose VU failed runs handleSummary.
  run = Run({"-q", "-e", "MODE=abort", "--agents", "2", script}, {}, "");
  EXPECT_EQ(run.exit_code, 108) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("HANDLED"));
}

TEST_F(OptionsTest, InitContextExceptionCarriesTheScriptExceptionHint) {
  testutil::RunResult run = Run({"-q", Write("throw.js", "throw new Error('early');\nexport default function () {}\n")});
  EXPECT_EQ(run.exit_code, 107) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, AllOf(HasSubstr("Error: early"), HasSubstr("hint=\"script exception\"")));
}

TEST_F(OptionsTest, SubmetricThresholdWithBracesAndItsParentLine) {
  const std::string script = Write("braces.js", R"(import { Trend } from 'k6/metrics';
const t = new Trend('my_trend');
export const options = { iterations: 1, thresholds: { 'my_trend{name:http://${}.com}': ['p(95)<100'] } };
export default function () {}
)");
  testutil::RunResult run = Run({"-q", script});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  // The parent, which got no sample, is listed with zero values, as in k6.
  EXPECT_THAT(run.stdout_text, HasSubstr("    my_trend..."));
  EXPECT_THAT(run.stdout_text, HasSubstr("{ name:http://${}.com }"));
}

// -------------------------------------------------------------------- TLS

class TlsOptionsTest : public OptionsTest {
 protected:
  void SetUp() override {
    OptionsTest::SetUp();
    testutil::MakeCertificates(dir_);
    tls_ = StartTarget({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key"});
    mtls_ = StartTarget({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key", "--tls-client-ca",
                         dir_ + "/ca.pem"});
  }
  // A script that connects over TLS with `options` and `tls` as connect's.
  std::string Script(const std::string& options, const std::string& tls = "{}") {
    return Write("tls.js", R"(import grpc from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const cert = open('client.pem'), key = open('client.key'), ca = open('ca.pem');
export const options = Object.assign({ iterations: 1, thresholds: { checks: ['rate==1'] } }, )" +
                                       options + R"();
export default function () {
  let ok = false;
  try {
    client.connect(__ENV.TARGET, { tls: )" + tls + R"( });
    ok = client.invoke('hello.HelloService/SayHello', { greeting: 'x' }).status === 0;
    client.close();
  } catch (e) {
    console.error(String(e));
  }
  check(ok, { 'ok': (v) => v });
}
)");
  }
  testutil::RunResult RunOn(const std::string& target, const std::string& script, std::vector<std::string> flags = {},
                            const testutil::EnvExtra& env = {}) {
    flags.insert(flags.begin(), {"-q", "-e", "TARGET=" + target});
    flags.push_back(script);
    return Run(flags, env);
  }
  std::string tls_, mtls_;
};

TEST_F(TlsOptionsTest, InsecureSkipTlsVerifyFromOptionEnvAndFlag) {
  // The server's certificate comes from a CA the system does not trust.
  testutil::RunResult run = RunOn(tls_, Script("{}"));
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("x509: certificate signed by unknown authority"));
  run = RunOn(tls_, Script("{ insecureSkipTLSVerify: true }"));
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  run = RunOn(tls_, Script("{}"), {"--insecure-skip-tls-verify"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  run = RunOn(tls_, Script("{}"), {}, {{"K6_INSECURE_SKIP_TLS_VERIFY", "true"}});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  // It applies to a connect with a tls object of its own too (spec §1.5.1).
  run = RunOn(tls_, Script("{ insecureSkipTLSVerify: true }", "{ cacerts: [] }"));
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
}

TEST_F(TlsOptionsTest, TlsAuthPresentsTheClientCertificate) {
  // Mutual TLS: without a client certificate the server hangs up.
  testutil::RunResult run = RunOn(mtls_, Script("{}", "{ cacerts: ca }"));
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  // tlsAuth for the host; the server's CA through insecureSkipTLSVerify,
  // since a tls object of connect's own would leave tlsAuth out.
  run = RunOn(mtls_, Script("{ insecureSkipTLSVerify: true, tlsAuth: [{ domains: ['127.0.0.1'], cert: cert, key: key }] }"));
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  // A connect with its own tls object does not use tlsAuth, as in k6.
  run = RunOn(mtls_, Script("{ tlsAuth: [{ domains: ['127.0.0.1'], cert: cert, key: key }] }", "{ cacerts: ca }"));
  EXPECT_EQ(run.exit_code, 99) << run.stderr_text;
  // A broken tlsAuth entry is a 104 naming it, before anything runs.
  run = RunOn(mtls_, Script("{ tlsAuth: [{ cert: 'not a pem', key: key }] }"));
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("options.tlsAuth[0]: invalid tls cert value"));
}

TEST_F(TlsOptionsTest, TlsVersionAndCipherSuitesAreValidatedAndWarnedAbout) {
  testutil::RunResult run = RunOn(tls_, Script("{ insecureSkipTLSVerify: true, tlsVersion: 'tls1.2', "
                                               "tlsCipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'] }"));
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("tlsCipherSuites is not applied"));
  EXPECT_THAT(run.stderr_text, HasSubstr("is not enforced: gRPC C++ 1.51 negotiates TLS 1.2 or 1.3"));
  run = RunOn(tls_, Script("{ tlsVersion: { min: 'tls1.2', max: 'tls9' } }"));
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("options.tlsVersion.max: unknown TLS version 'tls9'"));
  run = RunOn(tls_, Script("{ tlsCipherSuites: ['TLS_FAST'] }"));
  EXPECT_EQ(run.exit_code, 104) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("options.tlsCipherSuites: unknown cipher suite 'TLS_FAST'"));
}

}  // namespace
}  // namespace barrage
