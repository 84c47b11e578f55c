#include "controller/summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "common/metrics/metric_store.h"

namespace barrage::controller {
namespace {

using metrics::MetricDef;
using metrics::MetricStore;
using metrics::MetricType;
using metrics::TagSet;
using metrics::ValueType;
using ::testing::HasSubstr;
using ::testing::Not;

// ------------------------------------------------------------ golden files

std::string GoldenPath(const std::string& name) {
  return std::string(BARRAGE_CONTROLLER_TESTDATA) + "/" + name;
}

std::string ReadGolden(const std::string& name) {
  std::ifstream in(GoldenPath(name), std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Compares with testdata/<name>. BARRAGE_UPDATE_GOLDEN=1 rewrites the file
// instead (then review the diff before committing it).
void ExpectGolden(const std::string& name, const std::string& actual) {
  if (std::getenv("BARRAGE_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(GoldenPath(name), std::ios::binary | std::ios::trunc) << actual;
    return;
  }
  const std::string want = ReadGolden(name);
  ASSERT_FALSE(want.empty()) << "missing golden file " << GoldenPath(name);
  EXPECT_EQ(actual, want) << "golden " << name << " differs; got:\n" << actual;
}

std::string StripAnsi(const std::string& s) {
  return std::regex_replace(s, std::regex("\x1b\\[[0-9;]*m"), "");
}

// ---------------------------------------------- the spec's own example (§4.4)

MetricSummary Metric(const std::string& name, MetricType type, ValueType contains,
                     std::map<std::string, double> values) {
  return MetricSummary{name, type, contains, std::move(values)};
}

MetricSummary Trend(const std::string& name, ValueType contains, double avg, double min, double med,
                    double max, double p90, double p95) {
  return Metric(name, MetricType::kTrend, contains,
                {{"avg", avg}, {"min", min}, {"med", med}, {"max", max}, {"p(90)", p90}, {"p(95)", p95}});
}

// The values behind K6_API.md §4.4's example, as BuildSummaryReport would
// compute them for a 10.05047 s run.
SummaryReport SpecExampleReport() {
  const double seconds = 10.05047;
  SummaryReport r;
  MetricSummary checks = Metric("checks", MetricType::kRate, ValueType::kDefault,
                                {{"rate", 0.995}, {"passes", 199}, {"fails", 1}});
  MetricSummary grpc = Trend("grpc_req_duration", ValueType::kTime, 1.08, 0.512, 1.01, 3.12, 1.74, 2.14);
  MetricSummary grpc_hello =
      Trend("grpc_req_duration{method:SayHello}", ValueType::kTime, 1.2, 0.6, 1.1, 3.12, 1.8, 2.2);
  // Given out of order on purpose: the renderer sorts.
  r.thresholds.push_back({grpc_hello, {{"p(99)<10", false, "p(99)", 3.0}}});
  r.thresholds.push_back({checks, {{"rate>0.99", true, "rate", 0.995}}});
  r.thresholds.push_back({grpc, {{"p(95)<200", true, "p(95)", 2.14}}});

  ChecksSummary c;
  c.total = 200;
  c.passes = 199;
  c.total_rate = 200 / seconds;
  c.checks = {{"status is OK", 199, 1}, {"has reply", 200, 0}};
  r.total.checks = c;
  r.total.metrics = {
      grpc_hello,
      Metric("vus_max", MetricType::kGauge, ValueType::kDefault, {{"value", 10}, {"min", 10}, {"max", 10}}),
      checks,  // never listed
      Trend("reply_len", ValueType::kDefault, 12.5, 11, 12, 14, 14, 14),
      Trend("iteration_duration", ValueType::kTime, 501.3, 500.61, 501.1, 506.9, 502.2, 502.8),
      Metric("iterations", MetricType::kCounter, ValueType::kDefault, {{"count", 200}, {"rate", 200 / seconds}}),
      Metric("vus", MetricType::kGauge, ValueType::kDefault, {{"value", 10}, {"min", 10}, {"max", 10}}),
      Metric("data_sent", MetricType::kCounter, ValueType::kData, {{"count", 39000}, {"rate", 39000 / seconds}}),
      Metric("data_received", MetricType::kCounter, ValueType::kData,
             {{"count", 61000}, {"rate", 61000 / seconds}}),
      grpc,
      Trend("group_duration", ValueType::kTime, 1, 1, 1, 1, 1, 1),  // never listed
  };
  return r;
}

TEST(RenderSummaryReportTest, ReproducesTheSpecExampleByteForByte) {
  ExpectGolden("spec_example_compact.txt", RenderSummaryReport(SpecExampleReport(), RenderOptions{}));
}

TEST(RenderSummaryReportTest, ColoursDecorateWithoutChangingTheLayout) {
  RenderOptions options;
  options.color = true;
  const std::string coloured = RenderSummaryReport(SpecExampleReport(), options);
  EXPECT_EQ(StripAnsi(coloured), ReadGolden("spec_example_compact.txt"));
  EXPECT_THAT(coloured, HasSubstr("\x1b[32m✓ has reply\x1b[0m"));
  EXPECT_THAT(coloured, HasSubstr("\x1b[31m✗ status is OK\x1b[0m"));
  EXPECT_THAT(coloured, HasSubstr("\x1b[31m✗\x1b[0m \x1b[37m'p(99)<10'\x1b[0m"));
  EXPECT_THAT(coloured, HasSubstr("reply_len\x1b[2;37m...............:\x1b[0m "));
  EXPECT_THAT(coloured, HasSubstr("avg=\x1b[36m12.5\x1b[0m    min="));
  EXPECT_THAT(coloured, HasSubstr("\x1b[1mTOTAL RESULTS\x1b[0m"));
}

TEST(RenderSummaryReportTest, TimeUnitAndTrendStatsChangeTheColumns) {
  SummaryReport r;
  r.total.metrics = {Metric("grpc_req_duration", MetricType::kTrend, ValueType::kTime,
                            {{"avg", 1.5}, {"p(99.9)", 2500}, {"count", 1234}})};
  RenderOptions options;
  options.trend_stats = {"avg", "p(99.9)", "count"};
  options.time_unit = "ms";
  EXPECT_EQ(RenderSummaryReport(r, options),
            "\n  █ TOTAL RESULTS \n"
            "\n    GRPC"
            "\n    grpc_req_duration...: avg=1.50ms p(99.9)=2500.00ms count=1234"
            "\n\n");
}

TEST(RenderSummaryReportTest, SubMetricWithoutListedParentKeepsItsFullNameInThresholds) {
  SummaryReport r;
  MetricSummary sub = Metric("grpc_streams{method:Bidi}", MetricType::kCounter, ValueType::kDefault,
                             {{"count", 3}, {"rate", 0.25}});
  r.thresholds.push_back({sub, {{"count>5", false, "count", 3.0}, {"rate<1", true, "rate", 0.25}}});
  r.total.metrics = {sub};
  EXPECT_EQ(RenderSummaryReport(r, RenderOptions{}),
            "\n  █ THRESHOLDS \n"
            "\n    grpc_streams{method:Bidi}"
            "\n    ✗ 'count>5' count=3"
            "\n    ✓ 'rate<1' rate=0.25/s"
            "\n\n"
            "\n  █ TOTAL RESULTS \n"
            "\n    GRPC"
            "\n      { method:Bidi }...: 3 0.25/s"
            "\n\n");
}

TEST(RenderSummaryReportTest, GaugeExtrasArePaddedToTheirColumns) {
  SummaryReport r;
  r.total.metrics = {
      Metric("vus", MetricType::kGauge, ValueType::kDefault, {{"value", 1}, {"min", 1}, {"max", 5}}),
      Metric("vus_max", MetricType::kGauge, ValueType::kDefault, {{"value", 100}, {"min", 10}, {"max", 100}}),
  };
  EXPECT_EQ(RenderSummaryReport(r, RenderOptions{}),
            "\n  █ TOTAL RESULTS \n"
            "\n    EXECUTION"
            "\n    vus.......: 1   min=1  max=5  "
            "\n    vus_max...: 100 min=10 max=100"
            "\n\n");
}

// ------------------------------------------------- a small run in a store

constexpr int64_t kSecond = 1'000'000'000;
int64_t At(double seconds) { return static_cast<int64_t>(seconds * kSecond); }

TagSet With(TagSet tags, const std::string& key, const std::string& value) {
  tags[key] = value;
  return tags;
}

// Five iterations in two scenarios, checks at the root and in nested
// groups, a threshold on an unsampled sub-metric. Every trend (and every
// group's or scenario's share of one) holds at most two samples or equal
// ones: there the histogram's quantiles are exact (ranks 0 and n-1 are the
// exact min and max), so the goldens do not depend on bucket layout.
class SmallRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Define("checks", MetricType::kRate, ValueType::kDefault);
    Define("group_duration", MetricType::kTrend, ValueType::kTime);
    Define("iterations", MetricType::kCounter, ValueType::kDefault);
    Define("iteration_duration", MetricType::kTrend, ValueType::kTime);
    Define("vus", MetricType::kGauge, ValueType::kDefault);
    Define("vus_max", MetricType::kGauge, ValueType::kDefault);
    Define("data_received", MetricType::kCounter, ValueType::kData);
    Define("data_sent", MetricType::kCounter, ValueType::kData);
    Define("grpc_req_duration", MetricType::kTrend, ValueType::kTime);
    Define("grpc_streams", MetricType::kCounter, ValueType::kDefault);
    Define("errors", MetricType::kCounter, ValueType::kDefault);
    Define("pending", MetricType::kGauge, ValueType::kDefault);  // never sampled: not listed
    Define("reply_len", MetricType::kTrend, ValueType::kDefault);

    const TagSet root = {{"scenario", "default"}, {"group", ""}};
    const TagSet greet = With(root, "group", "::greet");
    const TagSet stream = With(root, "group", "::greet::stream");
    const TagSet other = {{"scenario", "other"}, {"group", ""}};

    Check(root, "status is OK", {{1, 1.0}, {1, 2.0}, {1, 3.0}, {0, 4.0}});
    Check(greet, "has reply", {{1, 1.5}, {1, 2.5}, {1, 3.5}, {1, 4.5}});
    Check(stream, "stream done", {{1, 2.2}, {0, 3.2}});
    Check(other, "status is OK", {{1, 5.0}});
    for (double t : {1.9, 2.9, 3.9, 4.9}) store_.Add("group_duration", greet, 50, At(t));
    for (double t : {2.1, 3.1}) store_.Add("group_duration", stream, 50, At(t));
    for (double t : {2.0, 3.0, 4.0, 5.0}) {
      store_.Add("iterations", root, 1, At(t));
      store_.Add("iteration_duration", root, 100, At(t));
    }
    store_.Add("iterations", other, 1, At(5.5));
    store_.Add("iteration_duration", other, 100, At(5.5));
    store_.Add("vus", {}, 5, At(1));
    store_.Add("vus", {}, 10, At(2));
    store_.Add("vus", {}, 8, At(3));
    store_.Add("vus_max", {}, 10, At(1));
    store_.Add("data_received", root, 6000, At(1));
    store_.Add("data_received", greet, 4000, At(2));
    store_.Add("data_sent", root, 2500, At(1));
    store_.Add("grpc_req_duration", With(With(greet, "method", "SayHello"), "status", "0"), 2, At(1.2));
    store_.Add("grpc_req_duration", With(With(stream, "method", "LotsOfReplies"), "status", "0"), 12,
               At(2.3));
    store_.Add("grpc_streams", With(stream, "method", "LotsOfReplies"), 1, At(2.0));
    store_.Add("errors", root, 0, At(1));
    store_.Add("reply_len", greet, 11, At(1));
    store_.Add("reply_len", greet, 14, At(2));

    input_.store = &store_;
    input_.test_run_duration = absl::Seconds(10);
    input_.thresholds = {
        {"grpc_req_duration", "grpc_req_duration", {}, {{"p(95)<200", true, "p(95)", 11.5}}},
        {"grpc_req_duration{method:SayHello}",
         "grpc_req_duration",
         {{"method", "SayHello"}},
         {{"p(99)<1", false, "p(99)", 2.0}}},
        {"checks", "checks", {}, {{"rate>0.9", false, "rate", 9.0 / 11}}},
        {"grpc_streams{method:Bidi}", "grpc_streams", {{"method", "Bidi"}}, {{"count>0", false, "count", 0.0}}},
        {"iterations", "iterations", {}, {{"rate>0.1", true, "rate", 0.5}}},
    };
  }

  void Define(const std::string& name, MetricType type, ValueType contains) {
    ASSERT_TRUE(store_.Define(MetricDef{name, type, contains}).ok());
  }
  void Check(const TagSet& tags, const std::string& name,
             std::initializer_list<std::pair<double, double>> samples) {
    for (const auto& [value, t] : samples) store_.Add("checks", With(tags, "check", name), value, At(t));
  }

  MetricStore store_;
  SummaryInput input_;
};

TEST_F(SmallRunTest, CompactSummaryFromTheStore) {
  ExpectGolden("small_run_compact.txt", RenderSummaryText(input_));
}

TEST_F(SmallRunTest, ReportListsSampledAndThresholdMetricsOnly) {
  SummaryReport report = BuildSummaryReport(input_);
  std::vector<std::string> names;
  for (const MetricSummary& m : report.total.metrics) names.push_back(m.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "checks", "group_duration", "iterations", "iteration_duration", "vus",
                         "vus_max", "data_received", "data_sent", "grpc_req_duration",
                         "grpc_req_duration{method:SayHello}", "grpc_streams",
                         "grpc_streams{method:Bidi}", "errors", "reply_len"));
  for (const MetricSummary& m : report.total.metrics) {
    if (m.name == "grpc_req_duration{method:SayHello}") {
      EXPECT_EQ(m.values.at("max"), 2);  // the sub-metric holds only its own series
    }
    if (m.name == "grpc_req_duration") {
      EXPECT_EQ(m.values.at("max"), 12);
      EXPECT_EQ(m.values.at("med"), 7);
    }
    if (m.name == "vus") {
      EXPECT_EQ(m.values.at("value"), 8);  // the latest sample, not the largest
      EXPECT_EQ(m.values.at("max"), 10);
    }
    if (m.name == "iterations") {
      EXPECT_EQ(m.values.at("rate"), 0.5);
    }
  }
  ASSERT_TRUE(report.total.checks.has_value());
  EXPECT_EQ(report.total.checks->total, 11u);
  EXPECT_EQ(report.total.checks->passes, 9u);
  // Totals merge checks of the same name across groups and scenarios, in
  // order of first use.
  ASSERT_EQ(report.total.checks->checks.size(), 3u);
  EXPECT_EQ(report.total.checks->checks[0].name, "status is OK");
  EXPECT_EQ(report.total.checks->checks[0].passes, 4u);
  EXPECT_EQ(report.total.checks->checks[0].fails, 1u);
  EXPECT_EQ(report.total.checks->checks[1].name, "has reply");
  EXPECT_EQ(report.total.checks->checks[2].name, "stream done");
  EXPECT_TRUE(report.groups.empty());  // compact mode
}

TEST_F(SmallRunTest, FullSummaryHasGroupAndScenarioSections) {
  input_.mode = SummaryMode::kFull;
  const std::string text = RenderSummaryText(input_);
  ExpectGolden("small_run_full.txt", text);
  EXPECT_THAT(text, HasSubstr("  █ GROUP: greet \n"));
  EXPECT_THAT(text, HasSubstr("    ↳ GROUP: stream \n"));
  EXPECT_THAT(text, HasSubstr("  █ SCENARIO: other \n"));
  EXPECT_THAT(text, Not(HasSubstr("SCENARIO: default")));
}

// k6's --summary-mode=legacy (internal/js/summary-legacy.js, v1.8.0): the
// golden file was checked against k6's own script run by node over the same
// data (BuildHandleSummaryData's JSON), byte for byte.
TEST_F(SmallRunTest, LegacySummaryIsK6sPreOneLayout) {
  input_.mode = SummaryMode::kLegacy;
  const std::string text = RenderSummaryText(input_);
  ExpectGolden("small_run_legacy.txt", text);
  // Checks first (each group's under its title), then one flat sorted list
  // where checks and group_duration appear and thresholds mark their metric.
  EXPECT_THAT(text, HasSubstr("     ✗ status is OK\n      ↳  80% — ✓ 4 / ✗ 1\n"));
  EXPECT_THAT(text, HasSubstr("     █ greet\n\n       ✓ has reply\n"));
  EXPECT_THAT(text, HasSubstr("   ✗ checks"));
  EXPECT_THAT(text, HasSubstr("     group_duration"));
  EXPECT_THAT(text, HasSubstr("     ✗ { method:SayHello }"));
  EXPECT_LT(text.find("grpc_req_duration"), text.find("{ method:SayHello }"));
  EXPECT_LT(text.find("{ method:SayHello }"), text.find("grpc_streams"));
  // Coloured on a terminal, the same text under the escapes.
  input_.color = true;
  EXPECT_EQ(StripAnsi(RenderSummaryText(input_)), text);
}

TEST_F(SmallRunTest, SubMetricThresholdListsItsParentWithZeroValues) {
  ASSERT_TRUE(store_.Define(MetricDef{"my_trend", MetricType::kTrend, ValueType::kDefault}).ok());
  input_.thresholds.push_back(
      {"my_trend{name:http://${}.com}", "my_trend", {{"name", "http://${}.com"}}, {{"p(95)<100", true, "p(95)", 0.0}}});
  SummaryReport report = BuildSummaryReport(input_);
  std::vector<std::string> names;
  for (const MetricSummary& m : report.total.metrics) names.push_back(m.name);
  EXPECT_THAT(names, ::testing::IsSupersetOf({"my_trend", "my_trend{name:http://${}.com}"}));
  const std::string text = RenderSummaryText(input_);
  EXPECT_THAT(text, HasSubstr("    my_trend..."));
  EXPECT_THAT(text, HasSubstr("      { name:http://${}.com }..."));
}

TEST_F(SmallRunTest, ExportShape) {
  input_.setup_data_json = R"({"token":"abc","n":[1,2]})";
  const std::string text = RenderSummaryExport(input_);
  ExpectGolden("small_run_export.json", text);

  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_FALSE(j.contains("options"));
  EXPECT_FALSE(j.contains("state"));
  const auto& root = j["root_group"];
  EXPECT_EQ(root["id"], "d41d8cd98f00b204e9800998ecf8427e");  // md5 of ""
  EXPECT_EQ(root["checks"]["status is OK"]["path"], "::status is OK");
  EXPECT_EQ(root["checks"]["status is OK"]["id"], PathId("::status is OK"));
  EXPECT_EQ(root["checks"]["status is OK"]["passes"], 4);
  EXPECT_EQ(root["checks"]["status is OK"]["fails"], 1);
  const auto& greet = root["groups"]["greet"];
  EXPECT_EQ(greet["path"], "::greet");
  EXPECT_EQ(greet["id"], "528d440e83f3a75dbae168bcce44261a");  // md5 of "::greet"
  EXPECT_EQ(greet["checks"]["has reply"]["path"], "::greet::has reply");
  EXPECT_EQ(greet["groups"]["stream"]["path"], "::greet::stream");
  EXPECT_EQ(greet["groups"]["stream"]["checks"]["stream done"]["fails"], 1);
  // A Rate's rate is "value"; thresholds are true when they FAILED.
  EXPECT_EQ(j["metrics"]["checks"]["passes"], 9);
  EXPECT_FALSE(j["metrics"]["checks"].contains("rate"));
  EXPECT_TRUE(j["metrics"]["checks"]["thresholds"]["rate>0.9"].get<bool>());
  EXPECT_FALSE(j["metrics"]["grpc_req_duration"]["thresholds"]["p(95)<200"].get<bool>());
  EXPECT_FALSE(j["metrics"]["vus"].contains("thresholds"));
  EXPECT_EQ(j["metrics"]["iterations"]["count"], 5);
  EXPECT_EQ(j["setup_data"]["token"], "abc");
}

TEST_F(SmallRunTest, ExportLeavesOutSetupDataWhenSetupReturnedNothing) {
  const nlohmann::json j = nlohmann::json::parse(RenderSummaryExport(input_));
  EXPECT_FALSE(j.contains("setup_data"));
  input_.setup_data_json = "null";  // setup() returned null: that is a value
  EXPECT_TRUE(nlohmann::json::parse(RenderSummaryExport(input_)).contains("setup_data"));
}

TEST_F(SmallRunTest, HandleSummaryDataShape) {
  input_.trend_stats = {"avg", "p(99)", "count"};
  input_.time_unit = "ms";
  input_.setup_data_json = "[1,2,3]";
  const nlohmann::json d = BuildHandleSummaryData(input_, /*stdout_tty=*/true, /*stderr_tty=*/false);

  EXPECT_EQ(d["options"]["summaryTrendStats"], nlohmann::json({"avg", "p(99)", "count"}));
  EXPECT_EQ(d["options"]["summaryTimeUnit"], "ms");
  EXPECT_EQ(d["options"]["noColor"], false);
  EXPECT_EQ(d["state"]["isStdOutTTY"], true);
  EXPECT_EQ(d["state"]["isStdErrTTY"], false);
  EXPECT_EQ(d["state"]["testRunDurationMs"], 10000);

  const auto& root = d["root_group"];
  ASSERT_TRUE(root["groups"].is_array());
  ASSERT_TRUE(root["checks"].is_array());
  ASSERT_EQ(root["checks"].size(), 1u);
  EXPECT_EQ(root["checks"][0]["name"], "status is OK");
  ASSERT_EQ(root["groups"].size(), 1u);
  EXPECT_EQ(root["groups"][0]["name"], "greet");
  EXPECT_EQ(root["groups"][0]["groups"][0]["checks"][0]["name"], "stream done");

  const auto& grpc = d["metrics"]["grpc_req_duration"];
  EXPECT_EQ(grpc["type"], "trend");
  EXPECT_EQ(grpc["contains"], "time");
  EXPECT_EQ(grpc["values"]["avg"], 7);
  EXPECT_EQ(grpc["values"]["count"], 2);
  EXPECT_TRUE(grpc["values"].contains("p(99)"));
  EXPECT_EQ(grpc["thresholds"]["p(95)<200"]["ok"], true);
  const auto& checks = d["metrics"]["checks"];
  EXPECT_EQ(checks["type"], "rate");
  EXPECT_DOUBLE_EQ(checks["values"]["rate"].get<double>(), 9.0 / 11);
  EXPECT_EQ(checks["thresholds"]["rate>0.9"]["ok"], false);
  EXPECT_EQ(d["metrics"]["data_sent"]["contains"], "data");
  EXPECT_EQ(d["metrics"]["vus"]["values"], nlohmann::json({{"value", 8}, {"min", 5}, {"max", 10}}));
  EXPECT_TRUE(d["metrics"].contains("grpc_streams{method:Bidi}"));
  EXPECT_FALSE(d["metrics"].contains("pending"));
  EXPECT_EQ(d["setup_data"], nlohmann::json({1, 2, 3}));
}

TEST(PathIdTest, IsTheMd5OfThePath) {
  EXPECT_EQ(PathId(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(PathId("abc"), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(SummaryTextTest, EmptyRunHasOnlyTheTotalsTitle) {
  MetricStore store;
  SummaryInput input;
  input.store = &store;
  EXPECT_EQ(RenderSummaryText(input), "\n  █ TOTAL RESULTS \n\n");
}

}  // namespace
}  // namespace barrage::controller
