#include "common/threshold.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace barrage {
namespace {

using metrics::Aggregate;
using metrics::MetricType;
using metrics::TagSet;
using ::testing::HasSubstr;

struct GoodKey {
  std::string key;
  std::string metric;
  TagSet filter;
};

void PrintTo(const GoodKey& k, std::ostream* os) { *os << k.key; }

class ParseThresholdKeyGoodTest : public ::testing::TestWithParam<GoodKey> {};

TEST_P(ParseThresholdKeyGoodTest, Parses) {
  const absl::StatusOr<ThresholdKey> got = ParseThresholdKey(GetParam().key);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->metric, GetParam().metric);
  EXPECT_EQ(got->filter, GetParam().filter);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseThresholdKeyGoodTest,
    ::testing::Values(
        GoodKey{"grpc_req_duration", "grpc_req_duration", {}}, GoodKey{"  checks  ", "checks", {}},
        GoodKey{
            "grpc_req_duration{method:SayHello}", "grpc_req_duration", {{"method", "SayHello"}}},
        GoodKey{"grpc_req_duration{method:SayHello, status:0}",
                "grpc_req_duration",
                {{"method", "SayHello"}, {"status", "0"}}},
        GoodKey{"grpc_req_duration{ 'method' : \"SayHello\" }",
                "grpc_req_duration",
                {{"method", "SayHello"}}},
        GoodKey{"grpc_req_duration {scenario:smoke}", "grpc_req_duration", {{"scenario", "smoke"}}},
        GoodKey{"grpc_req_duration{url:127.0.0.1:50051/hello.HelloService/SayHello}",
                "grpc_req_duration",
                {{"url", "127.0.0.1:50051/hello.HelloService/SayHello"}}},
        GoodKey{"checks{check:'status is OK'}", "checks", {{"check", "status is OK"}}},
        GoodKey{"'my_trend'", "my_trend", {}},
        // k6's metrics.TestParseMetricName cases that parse: braces, '$' and
        // ':' inside values, and the group path's leading "::".
        GoodKey{"test_metric{abc:123,easyas:doremi}", "test_metric", {{"abc", "123"}, {"easyas", "doremi"}}},
        GoodKey{"test_metric{abc:123, easyas:doremi}", "test_metric", {{"abc", "123"}, {"easyas", "doremi"}}},
        GoodKey{"test_metric{group:::mygroup}", "test_metric", {{"group", "::mygroup"}}},
        GoodKey{"http_req_duration{name:http://${}.com}", "http_req_duration", {{"name", "http://${}.com"}}},
        GoodKey{"http_req_duration{name:http://${}.com,url:ssh://github.com:grafana/k6}",
                "http_req_duration",
                {{"name", "http://${}.com"}, {"url", "ssh://github.com:grafana/k6"}}},
        GoodKey{"my_trend{name:http://${}.com}", "my_trend", {{"name", "http://${}.com"}}},
        GoodKey{"m{a:{b:1}}", "m", {{"a", "{b:1}"}}}));

class ParseThresholdKeyBadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParseThresholdKeyBadTest, FailsNamingTheKey) {
  const absl::StatusOr<ThresholdKey> got = ParseThresholdKey(GetParam());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("invalid threshold key"));
}

INSTANTIATE_TEST_SUITE_P(Table, ParseThresholdKeyBadTest,
                         ::testing::Values("", "   ", "grpc_req_duration{method:SayHello",
                                           "grpc_req_duration method:SayHello}",
                                           "grpc_req_duration}method:SayHello{",
                                           "grpc_req_duration{method:SayHello}x",
                                           "grpc_req_duration{}", "grpc_req_duration{method}",
                                           "grpc_req_duration{method:}", "{method:SayHello}",
                                           "grpc_req_duration{a:1,}",
                                           // k6's metrics.TestParseMetricName cases that fail.
                                           "test_metric{easyas}", "test_metric{easyas:}",
                                           "test_metric{abc:123,easyas:}", "test_metric{abc:123,easyas:doremi",
                                           "test_metricabc:123,easyas:doremi}",
                                           "test_metric}abc:123,easyas:doremi}", "test_metric}abc{bar",
                                           "test_metric{foo:ba}r"));

TEST(ParseThresholdKeyTest, ErrorQuotesTheKey) {
  const auto got = ParseThresholdKey("grpc_req_duration{method:SayHello}x");
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("\"grpc_req_duration{method:SayHello}x\""));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("text after the closing curly brace: \"x\""));
}

struct GoodExpr {
  std::string text;
  std::string aggregation;
  double percentile;
  ThresholdOp op;
  double value;
};

void PrintTo(const GoodExpr& e, std::ostream* os) { *os << e.text; }

class ParseThresholdExpressionGoodTest : public ::testing::TestWithParam<GoodExpr> {};

TEST_P(ParseThresholdExpressionGoodTest, Parses) {
  const absl::StatusOr<ThresholdExpr> got = ParseThresholdExpression(GetParam().text);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->source, GetParam().text);
  EXPECT_EQ(got->aggregation, GetParam().aggregation);
  EXPECT_DOUBLE_EQ(got->percentile, GetParam().percentile);
  EXPECT_EQ(got->op, GetParam().op);
  EXPECT_EQ(got->value, GetParam().value);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseThresholdExpressionGoodTest,
    ::testing::Values(GoodExpr{"p(95)<200", "p(95)", 0.95, ThresholdOp::kLess, 200},
                      GoodExpr{"p(99.9) <= 300.5", "p(99.9)", 0.999, ThresholdOp::kLessEqual,
                               300.5},
                      GoodExpr{"p(0)>0", "p(0)", 0, ThresholdOp::kGreater, 0},
                      GoodExpr{"p(100)>=1", "p(100)", 1, ThresholdOp::kGreaterEqual, 1},
                      GoodExpr{"rate>0.99", "rate", 0, ThresholdOp::kGreater, 0.99},
                      GoodExpr{"count >= 10", "count", 0, ThresholdOp::kGreaterEqual, 10},
                      GoodExpr{"avg<100", "avg", 0, ThresholdOp::kLess, 100},
                      GoodExpr{"  med  <  1e3 ", "med", 0, ThresholdOp::kLess, 1000},
                      GoodExpr{"min>-5", "min", 0, ThresholdOp::kGreater, -5},
                      GoodExpr{"max < 2.5E-1", "max", 0, ThresholdOp::kLess, 0.25},
                      GoodExpr{"value==3", "value", 0, ThresholdOp::kEqual, 3},
                      GoodExpr{"value===3", "value", 0, ThresholdOp::kEqual, 3},
                      GoodExpr{"value!=+3", "value", 0, ThresholdOp::kNotEqual, 3},
                      GoodExpr{"rate<.5", "rate", 0, ThresholdOp::kLess, 0.5},
                      GoodExpr{"count>5.", "count", 0, ThresholdOp::kGreater, 5}));

class ParseThresholdExpressionBadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParseThresholdExpressionBadTest, FailsNamingTheExpression) {
  const absl::StatusOr<ThresholdExpr> got = ParseThresholdExpression(GetParam());
  ASSERT_FALSE(got.ok()) << GetParam();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("\"" + GetParam() + "\""));
}

INSTANTIATE_TEST_SUITE_P(Table, ParseThresholdExpressionBadTest,
                         ::testing::Values("", "p(95)", "p(95) = 200", "p(95) << 200", "p95<200",
                                           "p()<1", "p(101)<1", "p(-1)<1", "p(abc)<1", "avg<",
                                           "avg<abc", "avg<1ms", "avg<inf", "avg<nan", "avg<0x10",
                                           "mean<10", "<10", "avg<1e", "count>1 2", "rate!==1",
                                           "avg<1e999"));

TEST(ParseThresholdExpressionTest, ErrorsSayWhatIsWrong) {
  EXPECT_THAT(std::string(ParseThresholdExpression("mean<10").status().message()),
              HasSubstr("unknown aggregation method \"mean\""));
  EXPECT_THAT(std::string(ParseThresholdExpression("avg<abc").status().message()),
              HasSubstr("\"abc\" is not a number"));
  EXPECT_THAT(std::string(ParseThresholdExpression("p(101)<1").status().message()),
              HasSubstr("percentile \"101\""));
}

TEST(ValidateAggregationTest, AcceptsK6sTable) {
  auto ok = [](const std::string& text, MetricType type) {
    return ValidateAggregation(*ParseThresholdExpression(text), type).ok();
  };
  EXPECT_TRUE(ok("count>1", MetricType::kCounter));
  EXPECT_TRUE(ok("rate>1", MetricType::kCounter));
  EXPECT_TRUE(ok("value>1", MetricType::kGauge));
  EXPECT_TRUE(ok("rate>1", MetricType::kRate));
  for (const char* text : {"avg<1", "min<1", "max<1", "med<1", "p(90)<1", "p(99.99)<1"}) {
    EXPECT_TRUE(ok(text, MetricType::kTrend)) << text;
  }
  EXPECT_FALSE(ok("value>1", MetricType::kCounter));
  EXPECT_FALSE(ok("avg>1", MetricType::kCounter));
  EXPECT_FALSE(ok("rate>1", MetricType::kGauge));
  EXPECT_FALSE(ok("count>1", MetricType::kRate));
  EXPECT_FALSE(ok("count>1", MetricType::kTrend));
  EXPECT_FALSE(ok("rate>1", MetricType::kTrend));
  EXPECT_FALSE(ok("value>1", MetricType::kTrend));
}

TEST(ValidateAggregationTest, MessageListsSupportedMethods) {
  const absl::Status st =
      ValidateAggregation(*ParseThresholdExpression("p(95)<1"), MetricType::kRate);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "aggregation method 'p(95)' is not supported for metric type 'rate', supported: rate");
  EXPECT_EQ(ValidateAggregation(*ParseThresholdExpression("avg<1"), MetricType::kCounter).message(),
            "aggregation method 'avg' is not supported for metric type 'counter', supported: "
            "count, rate");
  EXPECT_THAT(
      std::string(
          ValidateAggregation(*ParseThresholdExpression("rate<1"), MetricType::kTrend).message()),
      HasSubstr("supported: avg, min, max, med, p(N)"));
}

TEST(ThresholdPassesTest, EachOperator) {
  auto passes = [](const std::string& text, double v) {
    return ThresholdPasses(*ParseThresholdExpression(text), v);
  };
  EXPECT_TRUE(passes("avg<2", 1));
  EXPECT_FALSE(passes("avg<2", 2));
  EXPECT_TRUE(passes("avg<=2", 2));
  EXPECT_FALSE(passes("avg<=2", 2.1));
  EXPECT_TRUE(passes("avg>2", 3));
  EXPECT_FALSE(passes("avg>2", 2));
  EXPECT_TRUE(passes("avg>=2", 2));
  EXPECT_FALSE(passes("avg>=2", 1.9));
  EXPECT_TRUE(passes("avg==2", 2));
  EXPECT_FALSE(passes("avg==2", 2.5));
  EXPECT_TRUE(passes("avg===2", 2));
  EXPECT_TRUE(passes("avg!=2", 3));
  EXPECT_FALSE(passes("avg!=2", 2));
}

std::optional<double> Value(const std::string& text, const Aggregate* agg, MetricType type,
                            bool final, absl::Duration duration = absl::Seconds(10)) {
  return AggregationValue(*ParseThresholdExpression(text), agg, type, duration, final);
}

TEST(AggregationValueTest, Trend) {
  Aggregate agg(MetricType::kTrend);
  for (int v = 1; v <= 100; ++v) agg.Add(v, v);
  EXPECT_DOUBLE_EQ(*Value("avg<1", &agg, MetricType::kTrend, false), 50.5);
  EXPECT_EQ(*Value("min<1", &agg, MetricType::kTrend, false), 1);
  EXPECT_EQ(*Value("max<1", &agg, MetricType::kTrend, false), 100);
  // k6: rank 0.5 * 99 = 49.5 -> between 50 and 51.
  EXPECT_NEAR(*Value("med<1", &agg, MetricType::kTrend, false), 50.5, 50.5 * 0.005);
  EXPECT_NEAR(*Value("p(95)<1", &agg, MetricType::kTrend, false), 95.05, 95.05 * 0.005);
  EXPECT_EQ(*Value("p(100)<1", &agg, MetricType::kTrend, false), 100);
}

TEST(AggregationValueTest, CounterCountAndRateOverTestDuration) {
  Aggregate agg(MetricType::kCounter);
  agg.Add(3, 1);
  agg.Add(2, 2);
  EXPECT_EQ(*Value("count>1", &agg, MetricType::kCounter, false), 5);
  EXPECT_EQ(*Value("rate>1", &agg, MetricType::kCounter, false, absl::Seconds(2)), 2.5);
  EXPECT_EQ(*Value("rate>1", &agg, MetricType::kCounter, false, absl::ZeroDuration()), 0);
}

TEST(AggregationValueTest, GaugeValueIsTheLatestSample) {
  Aggregate agg(MetricType::kGauge);
  agg.Add(7, 20);
  agg.Add(3, 10);
  EXPECT_EQ(*Value("value>1", &agg, MetricType::kGauge, false), 7);
}

TEST(AggregationValueTest, RateIsPassesOverCount) {
  Aggregate agg(MetricType::kRate);
  for (int k = 0; k < 4; ++k) agg.Add(k == 0 ? 0 : 1, k);
  EXPECT_EQ(*Value("rate>1", &agg, MetricType::kRate, false), 0.75);
}

TEST(AggregationValueTest, EmptyMetricsDuringTheRunAreSkipped) {
  const Aggregate empty_trend(MetricType::kTrend);
  EXPECT_FALSE(Value("p(95)<200", &empty_trend, MetricType::kTrend, false).has_value());
  EXPECT_FALSE(Value("p(95)<200", nullptr, MetricType::kTrend, false).has_value());
  EXPECT_FALSE(Value("count>1", nullptr, MetricType::kCounter, false).has_value());
  EXPECT_FALSE(Value("value>1", nullptr, MetricType::kGauge, false).has_value());
  EXPECT_FALSE(Value("rate>1", nullptr, MetricType::kRate, false).has_value());
}

TEST(AggregationValueTest, EmptyMetricsAtTheEnd) {
  const Aggregate empty_trend(MetricType::kTrend);
  for (const char* text : {"avg<1", "min<1", "max<1", "med<1", "p(95)<200"}) {
    EXPECT_EQ(Value(text, &empty_trend, MetricType::kTrend, true), 0.0) << text;
  }
  EXPECT_EQ(Value("p(95)<200", nullptr, MetricType::kTrend, true), 0.0);
  EXPECT_EQ(Value("count>1", nullptr, MetricType::kCounter, true), 0.0);
  EXPECT_EQ(Value("rate>1", nullptr, MetricType::kCounter, true), 0.0);
  EXPECT_EQ(Value("value>1", nullptr, MetricType::kGauge, true), 0.0);
  // A Rate with no samples has no value even at the end: its threshold passes.
  const Aggregate empty_rate(MetricType::kRate);
  EXPECT_FALSE(Value("rate>0.99", &empty_rate, MetricType::kRate, true).has_value());
  // So "p(95)<200" on a Trend that never got a sample passes.
  EXPECT_TRUE(ThresholdPasses(*ParseThresholdExpression("p(95)<200"),
                              *Value("p(95)<200", nullptr, MetricType::kTrend, true)));
}

TEST(AggregationValueTest, AggregationThatDoesNotApplyHasNoValue) {
  Aggregate agg(MetricType::kRate);
  agg.Add(1, 1);
  EXPECT_FALSE(Value("p(95)<1", &agg, MetricType::kRate, true).has_value());
}

}  // namespace
}  // namespace barrage
