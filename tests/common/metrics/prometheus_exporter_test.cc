#include "common/metrics/prometheus_exporter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <sstream>

namespace barrage::metrics {
namespace {

using ::testing::HasSubstr;

// The cumulative count of each `le` bucket, as the exporter's text says.
std::map<std::string, uint64_t> Buckets(const std::string& text, const std::string& family) {
  std::map<std::string, uint64_t> out;
  const std::regex line("^" + family + R"re(_bucket\{.*le="([^"]+)"\} (\d+)$)re");
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) out[m[1].str()] = std::stoull(m[2].str());
  }
  return out;
}

TEST(PrometheusExporterTest, HistogramBucketsCountEverySampleWithinEachBound) {
  MetricStore store;
  ASSERT_TRUE(store.Define({"lat", MetricType::kTrend, ValueType::kTime}).ok());
  ASSERT_TRUE(store.Define({"hits", MetricType::kCounter, ValueType::kDefault}).ok());
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> ms(0.0, 2.0);  // 0.01 ms .. seconds
  std::vector<double> samples;
  for (int i = 0; i < 20000; ++i) samples.push_back(ms(rng));
  samples.push_back(0);
  for (double v : samples) store.Add("lat", {{"method", "M"}, {"vu", "1"}}, v, 1);
  store.Add("hits", {{"method", "M"}}, 3, 1);
  absl::StatusOr<std::unique_ptr<PrometheusExporter>> exporter = PrometheusExporter::Start(
      {"127.0.0.1:0", {}, 100},
      [&](const std::function<void(MetricStore&)>& fn) { fn(store); }, [] { return RunState{1, "running", true}; });
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  const std::string text = (*exporter)->Render();
  const auto buckets = Buckets(text, "barrage_lat_seconds");
  ASSERT_EQ(buckets.size(), 19u) << text.substr(0, 2000);
  // The same rule, sample-free: every bucket whose representative value is
  // within the bound, from the merged histogram itself.
  const auto lat = store.Query("lat");  // kept: h refers into it
  const Histogram& h = lat->histogram();
  for (const auto& [le, got] : buckets) {
    if (le == "+Inf") {
      EXPECT_EQ(got, samples.size());
      continue;
    }
    const double bound_ms = std::stod(le) * 1000;
    uint64_t want = h.zero_count();
    const Histogram::BucketSpan pos = h.positive_buckets();
    for (size_t k = 0; k < pos.counts.size(); ++k) {
      if (Histogram::BucketValue(pos.offset + static_cast<int32_t>(k)) <= bound_ms) want += pos.counts[k];
    }
    EXPECT_EQ(got, want) << "le=" << le;
    // And within the histogram's resolution of an exact count of samples.
    const uint64_t exact = std::count_if(samples.begin(), samples.end(), [&](double v) { return v <= bound_ms; });
    const uint64_t loose = std::count_if(samples.begin(), samples.end(), [&](double v) { return v <= bound_ms * 1.01; });
    const uint64_t tight = std::count_if(samples.begin(), samples.end(), [&](double v) { return v <= bound_ms * 0.99; });
    EXPECT_GE(got, tight) << le << " exact " << exact;
    EXPECT_LE(got, loose) << le << " exact " << exact;
  }
  // Labels: allow-listed only (vu is not), and the other families.
  EXPECT_THAT(text, HasSubstr("barrage_lat_seconds_count{method=\"M\"} 20001"));
  EXPECT_THAT(text, HasSubstr("barrage_lat_quantile_seconds{method=\"M\",quantile=\"0.95\"}"));
  EXPECT_THAT(text, HasSubstr("barrage_hits_total{method=\"M\"} 3"));
  EXPECT_THAT(text, HasSubstr("barrage_run_phase{phase=\"running\"} 1"));
  EXPECT_EQ(text.find("vu=\""), std::string::npos);
}

}  // namespace
}  // namespace barrage::metrics

namespace barrage::metrics {
namespace {

// The text is written by hand (no prometheus-cpp): label values escaped as
// the exposition format says, names and HELP/TYPE lines per family, and
// every family present even when another metric merges series.
TEST(PrometheusExporterTextTest, EscapesLabelValuesAndWritesEachFamilyOnce) {
  MetricStore store;
  ASSERT_TRUE(store.Define({"hits", MetricType::kCounter, ValueType::kDefault}).ok());
  ASSERT_TRUE(store.Define({"ok", MetricType::kRate, ValueType::kDefault}).ok());
  store.Add("hits", {{"method", "a\"b\\c\nd"}}, 2, 1);
  store.Add("hits", {{"method", "a\"b\\c\nd"}, {"vu", "7"}}, 3, 1);  // vu is not exported: merges
  store.Add("ok", {{"method", "M"}}, 1, 1);
  store.Add("ok", {{"method", "M"}}, 0, 1);
  absl::StatusOr<std::unique_ptr<PrometheusExporter>> exporter = PrometheusExporter::Start(
      {"127.0.0.1:0", {}, 100}, [&](const std::function<void(MetricStore&)>& fn) { fn(store); },
      [] { return RunState{2, "setup", false}; });
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  const std::string text = (*exporter)->Render();
  EXPECT_THAT(text, HasSubstr("barrage_hits_total{method=\"a\\\"b\\\\c\\nd\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE barrage_hits_total counter\n"));
  EXPECT_THAT(text, HasSubstr("barrage_ok_total{method=\"M\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("barrage_ok_passes_total{method=\"M\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("barrage_agents_connected 2\n"));
  EXPECT_THAT(text, HasSubstr("barrage_run_phase{phase=\"setup\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("barrage_thresholds_passing 0\n"));
  size_t types = 0;
  for (size_t pos = 0; (pos = text.find("# TYPE barrage_hits_total ", pos)) != std::string::npos; ++pos) ++types;
  EXPECT_EQ(types, 1u);
  std::string again;
  (*exporter)->RenderInto(again);
  EXPECT_EQ(again.size(), text.size());
}

}  // namespace
}  // namespace barrage::metrics
