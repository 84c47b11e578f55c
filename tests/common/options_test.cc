#include "common/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

TEST(OptionsTest, ExecutionSegmentsAreRefusedUntilImplemented) {
  EXPECT_THAT(ParseError(R"({"executionSegment":"0:1/2"})"),
              HasSubstr("options.executionSegment: execution segments are not implemented yet"));
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
