#include "common/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "nlohmann/json.hpp"

namespace barrage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Options Parse(const std::string& json) {
  std::vector<std::string> warnings;
  absl::StatusOr<Options> o = ParseOptionsJson(json, "options", &warnings);
  EXPECT_TRUE(o.ok()) << o.status();
  return o.ok() ? *o : Options{};
}

std::string ParseError(const std::string& json) {
  absl::StatusOr<Options> o = ParseOptionsJson(json, "options", nullptr);
  EXPECT_FALSE(o.ok());
  return std::string(o.status().message());
}

TEST(OptionsTest, ParsesTheSeedScriptOptions) {
  Options o = Parse(R"({"vus":10,"duration":"10s","thresholds":{"grpc_req_duration":["p(95)<200"],
    "checks":[{"threshold":"rate>0.99","abortOnFail":true,"delayAbortEval":"5s"}]}})");
  EXPECT_EQ(o.vus, 10);
  EXPECT_EQ(o.duration, absl::Seconds(10));
  ASSERT_TRUE(o.thresholds.has_value());
  EXPECT_EQ(o.thresholds->at("grpc_req_duration")[0].expression, "p(95)<200");
  EXPECT_TRUE(o.thresholds->at("checks")[0].abort_on_fail);
  EXPECT_EQ(o.thresholds->at("checks")[0].delay_abort_eval, absl::Seconds(5));
  auto scenarios = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(scenarios.ok());
  ASSERT_EQ(scenarios->size(), 1u);
  EXPECT_EQ((*scenarios)[0].executor, "constant-vus");
  EXPECT_EQ((*scenarios)[0].Describe(), "10 looping VUs for 10s (gracefulStop: 30s)");
}

TEST(OptionsTest, ShortcutsBecomeK6DefaultScenarios) {
  auto one = ResolveScenarios(Parse("{}"), nullptr);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ((*one)[0].executor, "per-vu-iterations");
  EXPECT_EQ((*one)[0].vus, 1);
  auto iters = ResolveScenarios(Parse(R"({"iterations":30,"vus":3,"duration":"1m"})"), nullptr);
  ASSERT_TRUE(iters.ok());
  EXPECT_EQ((*iters)[0].executor, "shared-iterations");
  EXPECT_EQ((*iters)[0].max_duration, absl::Minutes(1));
  EXPECT_EQ((*iters)[0].Describe(),
            "30 iterations shared among 3 VUs (maxDuration: 1m0s, gracefulStop: 30s)");
  auto vus_only = ResolveScenarios(Parse(R"({"vus":4})"), nullptr);
  ASSERT_TRUE(vus_only.ok());
  EXPECT_EQ((*vus_only)[0].iterations, 4);
}

TEST(OptionsTest, HigherSourceWipesLowerShortcuts) {
  Options script = Parse(R"({"vus":10,"duration":"10s","summaryTrendStats":["avg"]})");
  Options flags;
  flags.iterations = 100;
  Options merged = MergeOptions(script, flags);
  EXPECT_FALSE(merged.duration.has_value());
  EXPECT_EQ(merged.iterations, 100);
  EXPECT_EQ(merged.vus, 10);
  EXPECT_THAT(merged.TrendStats(), ElementsAre("avg"));
}

TEST(OptionsTest, ScenariosAreStrictAndNamed) {
  EXPECT_THAT(
      ParseError(
          R"({"scenarios":{"s1":{"executor":"constant-vus","vus":2,"duration":"5s","rate":3}}})"),
      HasSubstr("options.scenarios.s1: unknown field 'rate' for executor constant-vus"));
  EXPECT_THAT(ParseError(R"({"scenarios":{"s1":{"executor":"externally-controlled"}}})"),
              HasSubstr("the externally-controlled executor is not supported"));
  EXPECT_THAT(
      ParseError(R"({"scenarios":{"bad name":{"executor":"constant-vus","duration":"1s"}}})"),
      HasSubstr("invalid scenario name 'bad name'"));
  Options o =
      Parse(R"({"scenarios":{"a":{"executor":"shared-iterations","vus":5,"iterations":2}}})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(
      std::string(r.status().message()),
      HasSubstr(
          "scenario 'a': the number of iterations (2) can't be less than the number of VUs (5)"));
}

TEST(OptionsTest, EveryProblemIsReported) {
  std::string message = ParseError(R"json({"vus":"many","duration":"soon","summaryTrendStats":["p(101)"],"setupTimeout":true})json");
  EXPECT_THAT(message, HasSubstr("options.vus: expected an integer"));
EXPECT_THAT(message, HasSubstr("options.duration: invalid duration"));
EXPECT_THAT(message, HasSubstr("stat 'p(101)' is not supported"));
EXPECT_THAT(message, HasSubstr("options.setupTimeout: expected a duration"));
}

TEST(OptionsTest, UnknownKeysWarnAndHttpOptionsAreIgnored) {
  std::vector<std::string> warnings;
  absl::StatusOr<Options> o = ParseOptionsJson(R"({"batch":10,"wat":1})", "options", &warnings);
  ASSERT_TRUE(o.ok());
  EXPECT_THAT(warnings, ElementsAre(HasSubstr("wat")));
}

// k6's dns option: JSON in the script, its text form in --dns and K6_DNS,
// merged field by field; k6's parseTTL.
TEST(OptionsTest, DnsIsReadMergedAndWrittenAsK6Does) {
  Options script = Parse(R"({"dns":{"ttl":"1m","select":"roundRobin"},"hosts":{"A.test":"127.0.0.2","*.b.test:443":"[::1]:8443"}})");
  EXPECT_EQ(script.dns.ttl, "1m");
  EXPECT_EQ(script.dns.Select(), "roundRobin");
  EXPECT_EQ(script.dns.Policy(), "preferIPv4");
  EXPECT_EQ(script.dns.Ttl(), absl::Minutes(1));
  ASSERT_TRUE(script.hosts.has_value());
  EXPECT_EQ(script.hosts->at("a.test"), "127.0.0.2");  // lower case, as k6 keeps them
  absl::StatusOr<DnsConfig> flag = ParseDnsText("policy=onlyIPv6,ttl=inf");
  ASSERT_TRUE(flag.ok()) << flag.status();
  Options flags;
  flags.dns = *flag;
  Options merged = MergeOptions(script, flags);
  EXPECT_EQ(merged.dns.Select(), "roundRobin");  // not set by the flag: the script's
  EXPECT_EQ(merged.dns.Policy(), "onlyIPv6");
  EXPECT_EQ(merged.dns.Ttl(), absl::InfiniteDuration());
  // k6's --dns default sets nothing, so it overrides nothing.
  absl::StatusOr<DnsConfig> def = ParseDnsText("ttl=5m,select=random,policy=preferIPv4");
  ASSERT_TRUE(def.ok());
  EXPECT_FALSE(def->ttl || def->select || def->policy);
  // The JSON the agents get reads back the same.
  nlohmann::json j = nlohmann::json::parse(OptionsToJson(merged, {}));
  EXPECT_EQ(j["dns"], nlohmann::json::parse(R"({"ttl":"inf","select":"roundRobin","policy":"onlyIPv6"})"));
  Options back = Parse(j.dump());
  EXPECT_EQ(back.dns.policy, "onlyIPv6");
  EXPECT_EQ(*back.hosts, *merged.hosts);
  EXPECT_EQ(ParseDnsTtl("0").value(), absl::ZeroDuration());
  EXPECT_EQ(ParseDnsTtl("1500").value(), absl::Milliseconds(1500));  // ms without a unit
  EXPECT_EQ(ParseDnsTtl("2d").value(), absl::Hours(48));
  EXPECT_EQ(ParseDnsTtl("-1s").status().message(), "invalid DNS TTL: -1s");
}

TEST(OptionsTest, K6DnsFromTheEnvironment) {
  auto env = [](const char* value) {
    return OptionsFromEnvironment([value](const char* name) { return std::string(name) == "K6_DNS" ? value : nullptr; });
  };
  absl::StatusOr<Options> o = env("select=first");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->dns.Select(), "first");
  EXPECT_THAT(env("select").status().message(), HasSubstr("K6_DNS: no value for key select"));
  EXPECT_THAT(env("ttl=x").status().message(), HasSubstr("K6_DNS: invalid DNS TTL: x"));
}

TEST(OptionsTest, VusFromAHigherSourceReplacesScenariosAsInK6V21) {
  Options script = Parse(R"({"scenarios":{"s":{"executor":"constant-vus","vus":2,"duration":"5s"}}})");
  Options flags;
  flags.vus = 8;
  std::vector<std::string> warnings;
  Options merged = MergeOptions(script, flags, &warnings);
  auto r = ResolveScenarios(merged, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].executor, "shared-iterations");
  EXPECT_EQ((*r)[0].iterations, 8);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("vus set on its own overrides the scenarios"));
  // In the same source the scenarios win and vus is ignored (v1 scripts).
  Options same = Parse(R"({"vus":8,"scenarios":{"s":{"executor":"constant-vus","vus":2,"duration":"5s"}}})");
  warnings.clear();
  r = ResolveScenarios(same, &warnings);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].executor, "constant-vus");
  EXPECT_THAT(warnings, ElementsAre(HasSubstr("the vus option is ignored")));
}

TEST(OptionsTest, ExecutionSegmentsAreParsedAndCheckedWhenRead) {
  Options o = Parse(R"({"executionSegment":"1/3:2/3","executionSegmentSequence":"0,1/3,2/3,1"})");
  EXPECT_EQ(o.execution_segment, "1/3:2/3");
  EXPECT_EQ(o.execution_segment_sequence, "0,1/3,2/3,1");
  EXPECT_THAT(ParseError(R"({"executionSegment":"2/3:1/3"})"), HasSubstr("options.executionSegment: "));
  EXPECT_THAT(ParseError(R"({"executionSegmentSequence":"0,1/2,1/3,1"})"),
              HasSubstr("options.executionSegmentSequence: "));
  EXPECT_THAT(ParseError(R"({"executionSegment":5})"), HasSubstr("options.executionSegment: expected a string"));
}

TEST(OptionsTest, RampingArrivalRateIsParsedAndDescribed) {
  Options o = Parse(R"({"scenarios":{"ramp":{"executor":"ramping-arrival-rate","startRate":0,"timeUnit":"1s",
    "preAllocatedVUs":5,"maxVUs":20,"stages":[{"duration":"10s","target":10},{"duration":"5s","target":10}]}}})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  const Scenario& s = (*r)[0];
  EXPECT_TRUE(s.IsRampingArrivalRate());
  EXPECT_TRUE(s.IsArrivalRate());
  EXPECT_EQ(s.RegularDuration(), absl::Seconds(15));
  EXPECT_EQ(s.Describe(), "Up to 10.00 iterations/s for 15s over 2 stages (maxVUs: 5-20, gracefulStop: 30s)");
  // Rate r(t) = t per second over the first stage: the k-th arrival
  // (1-based) comes when t^2/2 = k, at sqrt(2k) s; nothing at t = 0.
  for (int64_t k : {0, 1, 7, 49}) {
    EXPECT_NEAR(absl::ToDoubleSeconds(s.ArrivalOffset(k)), std::sqrt(2.0 * static_cast<double>(k + 1)), 1e-9) << k;
  }
  // 50 arrivals by the end of the ramp, then 10/s: the 51st at 10.1 s.
  EXPECT_NEAR(absl::ToDoubleSeconds(s.ArrivalOffset(50)), 10.1, 1e-9);
  EXPECT_NEAR(absl::ToDoubleSeconds(s.ArrivalOffset(99)), 15.0, 1e-9);
  EXPECT_EQ(s.ArrivalOffset(100), absl::InfiniteDuration());
}

TEST(OptionsTest, RampingArrivalRateDownwardFollowsTheSpecFormula) {
  Options o = Parse(R"({"scenarios":{"down":{"executor":"ramping-arrival-rate","startRate":20,"timeUnit":"2s",
    "preAllocatedVUs":1,"stages":[{"duration":"8s","target":4}]}}})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  const Scenario& s = (*r)[0];
  // In timeUnits: a = 20, b = 4, D = 4; x = (aD - sqrt(D(a^2 D + 2m(b-a))))/(a-b).
  const double a = 20, b = 4, d = 4;
  for (int64_t k : {0, 5, 20, 47}) {
    const double m = static_cast<double>(k + 1);
    const double x = (a * d - std::sqrt(d * (a * a * d + 2 * m * (b - a)))) / (a - b);
    EXPECT_NEAR(absl::ToDoubleSeconds(s.ArrivalOffset(k)), 2 * x, 1e-9) << k;
  }
  EXPECT_EQ(s.ArrivalOffset(48), absl::InfiniteDuration());  // (20+4)/2*4 = 48 arrivals in all
}

TEST(OptionsTest, EveryScenarioProblemIsReportedNamingScenarioAndField) {
  Options o = Parse(R"({"scenarios":{
    "a":{"executor":"constant-arrival-rate","rate":0,"duration":"0s","preAllocatedVUs":-1,"timeUnit":"0s"},
    "b":{"executor":"ramping-vus","stages":[{"duration":"-1s","target":2}],"startTime":"-5s"},
    "c":{"executor":"ramping-arrival-rate","stages":[],"preAllocatedVUs":1,"startRate":-1},
    "d":{"executor":"shared-iterations","vus":5,"iterations":2,"maxDuration":"500ms"}}})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_FALSE(r.ok());
  const std::string m(r.status().message());
  EXPECT_THAT(m, HasSubstr("scenario 'a': rate must be greater than 0, got 0"));
  EXPECT_THAT(m, HasSubstr("scenario 'a': duration must be at least 1s, got 0s"));
  EXPECT_THAT(m, HasSubstr("scenario 'a': timeUnit must be greater than 0"));
  EXPECT_THAT(m, HasSubstr("scenario 'a': preAllocatedVUs must not be negative, got -1"));
  EXPECT_THAT(m, HasSubstr("scenario 'b': stages[0].duration must not be negative"));
  EXPECT_THAT(m, HasSubstr("scenario 'b': startTime must not be negative, got -5s"));
  EXPECT_THAT(m, HasSubstr("scenario 'c': stages must not be empty"));
  EXPECT_THAT(m, HasSubstr("scenario 'c': startRate must not be negative, got -1"));
  EXPECT_THAT(m, HasSubstr("scenario 'd': the number of iterations (2) can't be less than the number of VUs (5)"));
  EXPECT_THAT(m, HasSubstr("scenario 'd': maxDuration must be at least 1s, got 500ms"));
  // A bad stage target is caught as the options are read.
  EXPECT_THAT(ParseError(R"({"scenarios":{"r":{"executor":"ramping-arrival-rate","preAllocatedVUs":1,
    "stages":[{"duration":"1s","target":-2}]}}})"),
              HasSubstr("options.scenarios.r.stages[0].target: must not be negative, got -2"));
  EXPECT_THAT(ParseError(R"({"stages":[{"duration":"1s","target":"many"}]})"),
              HasSubstr("options.stages[0].target: expected an integer, got \"many\""));
}

TEST(OptionsTest, ParametersOfAnotherExecutorAreRefused) {
  EXPECT_THAT(ParseError(R"({"scenarios":{"x":{"executor":"ramping-arrival-rate","rate":5,"stages":[],
    "preAllocatedVUs":1}}})"),
              HasSubstr("options.scenarios.x: unknown field 'rate' for executor ramping-arrival-rate"));
  EXPECT_THAT(ParseError(R"({"scenarios":{"x":{"executor":"ramping-arrival-rate","stages":[{"duration":"1s","target":1}]}}})"),
              HasSubstr("options.scenarios.x.preAllocatedVUs: required for ramping-arrival-rate"));
}

TEST(OptionsTest, OptionsToJsonShowsDerivedScenariosAndNullsForUnset) {
  Options o = Parse(R"({"vus":3,"duration":"10s","tags":{"team":"a"}})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(r.ok());
  const nlohmann::json j = nlohmann::json::parse(OptionsToJson(o, *r));
  EXPECT_FALSE(j.contains("vus"));
  EXPECT_FALSE(j.contains("duration"));
  EXPECT_EQ(j["scenarios"]["default"]["executor"], "constant-vus");
  EXPECT_EQ(j["scenarios"]["default"]["vus"], 3);
  EXPECT_EQ(j["scenarios"]["default"]["duration"], "10s");
  EXPECT_EQ(j["scenarios"]["default"]["gracefulStop"], "30s");
  EXPECT_EQ(j["tags"]["team"], "a");
  EXPECT_TRUE(j["setupTimeout"].is_null());
  EXPECT_TRUE(j["executionSegment"].is_null());
}

TEST(OptionsTest, RampingVusPlanFollowsK6) {
  Options o = Parse(R"({"stages":[{"duration":"10s","target":10},{"duration":"0s","target":3},{"duration":"4s","target":0}]})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  const Scenario& s = (*r)[0];
  EXPECT_EQ(s.executor, "ramping-vus");
  EXPECT_EQ(s.start_vus, 1);
  EXPECT_EQ(s.InitialVus(), 10);
  EXPECT_EQ(s.Describe(), "Up to 10 looping VUs for 14s over 3 stages (gracefulRampDown: 30s, gracefulStop: 30s)");
  // 1 -> 10 over 10 s: a + trunc((b - a) * t / D).
  EXPECT_EQ(s.PlannedVus(absl::ZeroDuration()), 1);
  EXPECT_EQ(s.PlannedVus(absl::Milliseconds(1110)), 1);
  EXPECT_EQ(s.PlannedVus(absl::Milliseconds(1112)), 2);
  EXPECT_EQ(s.PlannedVus(absl::Milliseconds(9999)), 9);
  EXPECT_EQ(s.PlannedVus(absl::Seconds(10)), 3);    // the 0 s stage jumps at once
  EXPECT_EQ(s.PlannedVus(absl::Seconds(11)), 3);    // 3 -> 0 over 4 s: the first VU goes after one step
  EXPECT_EQ(s.PlannedVus(absl::Milliseconds(11400)), 2);
  EXPECT_EQ(s.PlannedVus(absl::Seconds(20)), 0);
}

TEST(OptionsTest, RampingVusValidation) {
  EXPECT_THAT(ParseError(R"({"scenarios":{"r":{"executor":"ramping-vus","stages":[{"duration":"1s","target":-1}]}}})"),
              HasSubstr("options.scenarios.r.stages[0].target: must not be negative"));
  auto r = ResolveScenarios(Parse(R"({"scenarios":{"r":{"executor":"ramping-vus","startVUs":0,"stages":[{"duration":"1s","target":0}]}}})"), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("either startVUs or one of the stages' targets must be greater than 0"));
}

TEST(OptionsTest, ZeroDurationIsAnError) {
  auto r = ResolveScenarios(Parse(R"({"duration":"0s"})"), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("duration: must be greater than 0"));
}

}  // namespace
}  // namespace barrage

namespace barrage {
namespace {

// k6 v1.8's exec.test.options for `k6 run --iterations 1` with no options
// (internal/cmd/tests/cmd_run_test.go TestExecutionTestOptionsDefaultValues),
// scenarios aside: k6 leaves the scenario's unset fields null where Barrage
// shows the resolved values.
TEST(OptionsTest, OptionsToJsonHasEveryKeyK6Fills) {
  const nlohmann::json k6 = nlohmann::json::parse(R"json({"paused":null,"executionSegment":null,
    "executionSegmentSequence":null,"noSetup":null,"setupTimeout":null,"noTeardown":null,"teardownTimeout":null,
    "rps":null,"dns":{"ttl":null,"select":null,"policy":null},"maxRedirects":null,"userAgent":null,"batch":null,
    "batchPerHost":null,"httpDebug":null,"insecureSkipTLSVerify":null,"tlsCipherSuites":null,"tlsVersion":null,
    "tlsAuth":null,"throw":null,"thresholds":null,"blacklistIPs":null,"blockHostnames":null,"hosts":null,
    "noConnectionReuse":null,"noVUConnectionReuse":null,"minIterationDuration":null,"ext":null,
    "summaryTrendStats":["avg", "min", "med", "max", "p(90)", "p(95)"],"summaryTimeUnit":null,
    "systemTags":["check","error","error_code","expected_response","group","method","name","proto","scenario",
    "service","status","subproto","tls_version","url"],"tags":null,"metricSamplesBufferSize":null,
    "noCookiesReset":null,"discardResponseBodies":null,"consoleOutput":null,"localIPs":null})json");
  Options o = Parse(R"({"iterations":1})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(r.ok());
  nlohmann::json j = nlohmann::json::parse(OptionsToJson(o, *r));
  ASSERT_TRUE(j.contains("scenarios"));
  j.erase("scenarios");
  EXPECT_TRUE(j["handleSummaryTimeout"].is_null());  // Barrage's (and k6 v2.2's) extra key
  j.erase("handleSummaryTimeout");
  EXPECT_EQ(j, k6) << j.dump();
  // k6's field order, which JSON.stringify(exec.test.options) shows.
  const std::string text = OptionsToJson(o, *r);
  EXPECT_LT(text.find("\"paused\""), text.find("\"scenarios\""));
  EXPECT_LT(text.find("\"userAgent\""), text.find("\"thresholds\""));
  EXPECT_LT(text.find("\"discardResponseBodies\""), text.find("\"consoleOutput\""));
}

TEST(OptionsTest, OptionsK6IgnoresForGrpcShowInTestOptionsAsGiven) {
  Options o = Parse(R"({"rps":100,"dns":{"ttl":"1m","select":"roundRobin","policy":"any"},"paused":true})");
  auto r = ResolveScenarios(o, nullptr);
  ASSERT_TRUE(r.ok());
  const nlohmann::json j = nlohmann::json::parse(OptionsToJson(o, *r));
  EXPECT_EQ(j["rps"], 100);
  EXPECT_EQ(j["dns"]["select"], "roundRobin");
  EXPECT_EQ(j["paused"], true);
  // And they survive the trip to the agents (OptionsToJson -> ParseOptionsJson).
  Options back = Parse(OptionsToJson(o, *r));
  EXPECT_EQ(back.passthrough.at("rps"), "100");
}

TEST(OptionsTest, TlsOptionsAsK6ReadsThem) {
  Options o = Parse(R"({"insecureSkipTLSVerify":true,"tlsVersion":"tls1.2",
    "tlsCipherSuites":["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
    "tlsAuth":[{"domains":["example.com"],"cert":"C","key":"K","password":"pw"}]})");
  EXPECT_EQ(o.insecure_skip_tls_verify, true);
  ASSERT_TRUE(o.tls_version.has_value());
  EXPECT_EQ(o.tls_version->min, "tls1.2");
  EXPECT_EQ(o.tls_version->max, "tls1.2");
  ASSERT_TRUE(o.tls_auth.has_value());
  EXPECT_THAT((*o.tls_auth)[0].domains, ElementsAre("example.com"));
  EXPECT_EQ((*o.tls_auth)[0].password, "pw");
  Options range = Parse(R"({"tlsVersion":{"min":"tls1.2","max":"tls1.3"}})");
  EXPECT_EQ(range.tls_version->min, "tls1.2");
  EXPECT_EQ(range.tls_version->max, "tls1.3");
  // k6's texts for bad values, each naming the option.
  EXPECT_THAT(ParseError(R"({"tlsVersion":"tls9"})"), HasSubstr("options.tlsVersion: unknown TLS version 'tls9'"));
  EXPECT_THAT(ParseError(R"({"tlsVersion":{"min":"ssl3"}})"), HasSubstr("options.tlsVersion.min: unknown TLS version 'ssl3'"));
  EXPECT_THAT(ParseError(R"({"tlsCipherSuites":["TLS_NOPE"]})"),
              HasSubstr("options.tlsCipherSuites: unknown cipher suite 'TLS_NOPE'"));
  EXPECT_THAT(ParseError(R"({"tlsAuth":[{"cert":"C"}]})"), HasSubstr("options.tlsAuth[0].key: required"));
  EXPECT_THAT(ParseError(R"({"tlsAuth":[{"cert":"C","key":"K","nope":1}]})"),
              HasSubstr("options.tlsAuth[0]: unknown field 'nope'"));
  EXPECT_THAT(ParseError(R"({"insecureSkipTLSVerify":"yes"})"), HasSubstr("options.insecureSkipTLSVerify: expected a boolean"));
}

TEST(OptionsTest, SystemTagsMinIterationDurationAndUserAgent) {
  Options o = Parse(R"({"systemTags":["status","vu","nonsense"],"minIterationDuration":"1.5s","userAgent":"me/1"})");
  EXPECT_THAT(o.SystemTags(), ElementsAre("status", "vu"));  // unknown names ignored, as in k6
  EXPECT_EQ(o.min_iteration_duration, absl::Milliseconds(1500));
  EXPECT_EQ(o.UserAgent("0.1.0"), "me/1");
  EXPECT_EQ(Options{}.UserAgent("0.1.0"), "Barrage/0.1.0");
  EXPECT_EQ(Options{}.SystemTags(), DefaultSystemTags());
  EXPECT_TRUE(Parse(R"({"systemTags":[]})").SystemTags().empty());
  EXPECT_THAT(ParseError(R"({"systemTags":"status"})"), HasSubstr("options.systemTags: expected an array of strings"));
  EXPECT_THAT(ParseError(R"({"minIterationDuration":"soon"})"), HasSubstr("options.minIterationDuration"));
}

TEST(OptionsTest, SummaryModeIsNoScriptOptionInK6) {
  std::vector<std::string> warnings;
  ASSERT_TRUE(ParseOptionsJson(R"({"summaryMode":"full"})", "options", &warnings).ok());
  EXPECT_THAT(warnings, ElementsAre(HasSubstr("unknown fields in the options exported in the script: summaryMode")));
}

absl::StatusOr<Options> FromEnv(std::map<std::string, std::string> env) {
  return OptionsFromEnvironment([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(OptionsTest, EnvironmentVariablesK6Reads) {
  absl::StatusOr<Options> o = FromEnv({{"K6_SYSTEM_TAGS", "status, method"},
                                       {"K6_USER_AGENT", "ua/2"},
                                       {"K6_MIN_ITERATION_DURATION", "2s"},
                                       {"K6_INSECURE_SKIP_TLS_VERIFY", "1"},
                                       {"K6_HANDLE_SUMMARY_TIMEOUT", "3s"},
                                       {"K6_SETUP_TIMEOUT", "4s"},
                                       {"K6_STAGES", "1s:2,3s:0"},
                                       {"K6_NO_SETUP", "True"},
                                       {"K6_CONSOLE_OUTPUT", "console.log"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_THAT(o->SystemTags(), ElementsAre("method", "status"));
  EXPECT_EQ(o->user_agent, "ua/2");
  EXPECT_EQ(o->min_iteration_duration, absl::Seconds(2));
  EXPECT_EQ(o->insecure_skip_tls_verify, true);
  EXPECT_EQ(o->HandleSummaryTimeout(), absl::Seconds(3));
  EXPECT_EQ(o->SetupTimeout(), absl::Seconds(4));
  ASSERT_TRUE(o->stages.has_value());
  EXPECT_EQ(o->stages->size(), 2u);
  EXPECT_EQ((*o->stages)[0].target, 2);
  EXPECT_EQ(o->no_setup, true);
  EXPECT_EQ(o->console_output, "console.log");
}

TEST(OptionsTest, BadEnvironmentValuesNameTheVariableAndValue) {
  auto error = [](std::map<std::string, std::string> env) {
    absl::StatusOr<Options> o = FromEnv(std::move(env));
    EXPECT_FALSE(o.ok());
    return std::string(o.status().message());
  };
  EXPECT_THAT(error({{"K6_VUS", "ten"}}), HasSubstr("K6_VUS: not an integer (or out of range): ten"));
  EXPECT_THAT(error({{"K6_ITERATIONS", "18446744073709551615"}}), HasSubstr("K6_ITERATIONS"));
  EXPECT_THAT(error({{"K6_NO_SETUP", "yes"}}), HasSubstr("K6_NO_SETUP: not a boolean (true or false): yes"));
  EXPECT_THAT(error({{"K6_HANDLE_SUMMARY_TIMEOUT", "later"}}), HasSubstr("K6_HANDLE_SUMMARY_TIMEOUT"));
  EXPECT_THAT(error({{"K6_SUMMARY_TREND_STATS", "avg,p(101)"}}), HasSubstr("K6_SUMMARY_TREND_STATS"));
  EXPECT_THAT(error({{"K6_STAGES", "10s"}}), HasSubstr("K6_STAGES: expected DURATION:TARGET"));
  EXPECT_THAT(error({{"K6_TLS_CIPHER_SUITES", "RC4"}}), HasSubstr("K6_TLS_CIPHER_SUITES: unknown cipher suite 'RC4'"));
}

TEST(OptionsTest, ListsSplitAsK6SplitsThem) {
  EXPECT_THAT(SplitList(" a, b,,c "), ElementsAre("a", "b", "c"));
  EXPECT_TRUE(SplitList("").empty());
}

}  // namespace
}  // namespace barrage
