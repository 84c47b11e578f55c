#include "common/metrics/metric_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace barrage::metrics {
namespace {

using ::testing::HasSubstr;

const MetricDef kDuration{"grpc_req_duration", MetricType::kTrend, ValueType::kTime};
const MetricDef kChecks{"checks", MetricType::kRate, ValueType::kDefault};
const MetricDef kVus{"vus", MetricType::kGauge, ValueType::kDefault};

MetricStore StoreWithDefs() {
  MetricStore store;
  EXPECT_TRUE(store.Define(kDuration).ok());
  EXPECT_TRUE(store.Define(kChecks).ok());
  EXPECT_TRUE(store.Define(kVus).ok());
  return store;
}

TEST(MetricStoreTest, DefineIsIdempotentAndRejectsConflicts) {
  MetricStore store = StoreWithDefs();
  EXPECT_TRUE(store.Define(kDuration).ok());
  const absl::Status st = store.Define({"grpc_req_duration", MetricType::kCounter});
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(st.message(),
            "metric 'grpc_req_duration' already exists but with type trend, contains time");
  EXPECT_EQ(store.Define({"checks", MetricType::kRate, ValueType::kTime}).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_NE(store.Find("grpc_req_duration"), nullptr);
  EXPECT_EQ(*store.Find("grpc_req_duration"), kDuration);
  EXPECT_EQ(store.Find("nope"), nullptr);
}

TEST(MetricStoreTest, QueryMergesSeriesMatchingTheSubMetricFilter) {
  MetricStore store = StoreWithDefs();
  store.Add("grpc_req_duration", {{"method", "SayHello"}, {"status", "0"}}, 10, 1);
  store.Add("grpc_req_duration", {{"method", "SayHello"}, {"status", "14"}}, 20, 2);
  store.Add("grpc_req_duration", {{"method", "BidiHello"}, {"status", "0"}}, 40, 3);
  store.AddEncoded("grpc_req_duration", EncodeTagSet({{"method", "SayHello"}, {"status", "0"}}), 30,
                   4);
  EXPECT_EQ(store.series_count(), 3u);

  auto all = store.Query("grpc_req_duration");
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->count(), 4u);
  EXPECT_EQ(all->sum(), 100);

  auto say_hello = store.Query("grpc_req_duration", {{"method", "SayHello"}});
  ASSERT_TRUE(say_hello.has_value());
  EXPECT_EQ(say_hello->count(), 3u);
  EXPECT_EQ(say_hello->max(), 30);

  auto ok_say_hello = store.Query("grpc_req_duration", {{"method", "SayHello"}, {"status", "0"}});
  ASSERT_TRUE(ok_say_hello.has_value());
  EXPECT_EQ(ok_say_hello->count(), 2u);
  EXPECT_EQ(ok_say_hello->sum(), 40);
  EXPECT_EQ(ok_say_hello->first_seen_ns(), 1);

  EXPECT_FALSE(store.Query("grpc_req_duration", {{"method", "Nope"}}).has_value());
  EXPECT_FALSE(store.Query("grpc_req_duration", {{"scenario", "x"}}).has_value());
  EXPECT_FALSE(store.Query("checks").has_value());  // defined, no samples
  EXPECT_FALSE(store.Query("unknown").has_value());
}

TEST(MetricStoreTest, ForEachSeriesVisitsOneOrAllMetrics) {
  MetricStore store = StoreWithDefs();
  store.Add("grpc_req_duration", {{"a", "1"}}, 1, 1);
  store.Add("grpc_req_duration", {{"a", "2"}}, 1, 1);
  store.Add("checks", {{"check", "ok"}}, 1, 1);
  std::set<std::string> seen;
  store.ForEachSeries("grpc_req_duration",
                      [&](const std::string& metric, const TagSet& tags, const Aggregate& agg) {
                        seen.insert(metric + EncodeTagSet(tags));
                        EXPECT_EQ(agg.type(), MetricType::kTrend);
                      });
  EXPECT_EQ(seen, (std::set<std::string>{"grpc_req_durationa=1", "grpc_req_durationa=2"}));
  int all = 0;
  store.ForEachSeries("", [&](const std::string&, const TagSet&, const Aggregate&) { ++all; });
  EXPECT_EQ(all, 3);
  store.Clear();
  EXPECT_TRUE(store.empty());
  EXPECT_NE(store.Find("checks"), nullptr);  // definitions survive Clear
}

TEST(MetricStoreTest, MergeAddsDefinitionsAndSeries) {
  MetricStore a = StoreWithDefs();
  a.Add("checks", {{"check", "ok"}}, 1, 10);
  a.Add("vus", {}, 5, 10);
  MetricStore b;
  ASSERT_TRUE(b.Define(kChecks).ok());
  ASSERT_TRUE(b.Define(kVus).ok());
  ASSERT_TRUE(b.Define({"my_counter", MetricType::kCounter}).ok());
  b.Add("checks", {{"check", "ok"}}, 0, 11);
  b.Add("checks", {{"check", "other"}}, 1, 12);
  b.Add("vus", {}, 8, 20);
  b.Add("my_counter", {}, 3, 1);

  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_NE(a.Find("my_counter"), nullptr);
  auto checks = a.Query("checks", {{"check", "ok"}});
  ASSERT_TRUE(checks.has_value());
  EXPECT_EQ(checks->count(), 2u);
  EXPECT_EQ(checks->passes(), 1u);
  EXPECT_EQ(a.Query("checks")->count(), 3u);
  EXPECT_EQ(a.Query("vus")->last(), 8);
  EXPECT_EQ(a.Query("my_counter")->sum(), 3);
  EXPECT_EQ(a.series_count(), 4u);
}

TEST(MetricStoreTest, MergeConflictChangesNothing) {
  MetricStore a = StoreWithDefs();
  a.Add("checks", {}, 1, 1);
  MetricStore b;
  ASSERT_TRUE(b.Define({"fresh", MetricType::kCounter}).ok());
  ASSERT_TRUE(b.Define({"vus", MetricType::kCounter}).ok());  // a has vus as a gauge
  ASSERT_TRUE(b.Define(kChecks).ok());
  b.Add("checks", {}, 1, 2);
  b.Add("fresh", {}, 1, 2);
  const absl::Status st = a.Merge(b);
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(st.message()), HasSubstr("'vus'"));
  EXPECT_EQ(a.Find("fresh"), nullptr);
  EXPECT_EQ(a.Query("checks")->count(), 1u);
  EXPECT_EQ(a.series_count(), 1u);
}

TEST(MetricStoreTest, MergeIsOrderIndependent) {
  auto make = [](int offset) {
    MetricStore s = StoreWithDefs();
    for (int k = 0; k < 50; ++k) {
      s.Add("grpc_req_duration", {{"status", std::to_string(k % 3)}}, k + offset, k);
      s.Add("vus", {}, k % 7, k + offset);
    }
    return s;
  };
  MetricStore ab = make(0);
  ASSERT_TRUE(ab.Merge(make(100)).ok());
  MetricStore ba = make(100);
  ASSERT_TRUE(ba.Merge(make(0)).ok());
  for (const TagSet& filter : {TagSet{}, TagSet{{"status", "1"}}}) {
    EXPECT_EQ(ab.Query("grpc_req_duration", filter), ba.Query("grpc_req_duration", filter));
  }
  EXPECT_EQ(ab.Query("vus"), ba.Query("vus"));
}

TEST(MetricStoreDeathTest, AddingToAnUndefinedMetricAborts) {
  MetricStore store;
  EXPECT_DEATH(store.Add("nope", {}, 1, 1), "undefined metric 'nope'");
}

// A kept series (the hot path) counts into the same aggregate as AddEncoded,
// finds its series again after Clear() (each drain) and follows another store.
TEST(MetricStoreTest, SeriesRefSurvivesClearAndOtherStores) {
  MetricStore store = StoreWithDefs();
  const std::string tags = EncodeTagSet({{"method", "SayHello"}});
  SeriesRef ref("grpc_req_duration", tags);
  store.Add(ref, 5, 1);
  store.AddEncoded("grpc_req_duration", tags, 7, 2);
  store.Add(ref, 9, 3);
  ASSERT_NE(store.FindSeries("grpc_req_duration", tags), nullptr);
  EXPECT_EQ(store.FindSeries("grpc_req_duration", tags)->count(), 3u);
  EXPECT_EQ(store.series_count(), 1u);

  store.Clear();
  EXPECT_EQ(store.FindSeries("grpc_req_duration", tags), nullptr);
  store.Add(ref, 11, 4);  // must not write into the freed aggregate
  ASSERT_NE(store.FindSeries("grpc_req_duration", tags), nullptr);
  EXPECT_EQ(store.FindSeries("grpc_req_duration", tags)->count(), 1u);
  EXPECT_EQ(store.FindSeries("grpc_req_duration", tags)->sum(), 11);
  EXPECT_EQ(store.tag_bytes(), tags.size());

  MetricStore other = StoreWithDefs();
  other.Add(ref, 13, 5);
  EXPECT_EQ(other.FindSeries("grpc_req_duration", tags)->count(), 1u);
  EXPECT_EQ(store.FindSeries("grpc_req_duration", tags)->count(), 1u);
}

}  // namespace
}  // namespace barrage::metrics
