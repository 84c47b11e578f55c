#include "common/metrics/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace barrage::metrics {
namespace {

namespace pb = ::barrage::v1;

const MetricDef kDuration{"grpc_req_duration", MetricType::kTrend, ValueType::kTime};
const MetricDef kDataSent{"data_sent", MetricType::kCounter, ValueType::kData};
const MetricDef kVus{"vus", MetricType::kGauge, ValueType::kDefault};
const MetricDef kChecks{"checks", MetricType::kRate, ValueType::kDefault};
const MetricDef kCustom{"custom", MetricType::kTrend, ValueType::kDefault};

MetricStore StoreWith(std::initializer_list<MetricDef> defs) {
  MetricStore store;
  for (const MetricDef& def : defs) EXPECT_TRUE(store.Define(def).ok()) << def.name;
  return store;
}

MetricStore StoreWithDefs() { return StoreWith({kDuration, kDataSent, kVus, kChecks, kCustom}); }

// Every series of a store, keyed by metric and encoded tags, to compare
// stores whole.
using Snapshot = std::map<std::pair<std::string, std::string>, Aggregate>;
Snapshot SnapshotOf(const MetricStore& store) {
  Snapshot snapshot;
  store.ForEachSeries("", [&](const std::string& metric, const TagSet& tags, const Aggregate& agg) {
    snapshot.emplace(std::make_pair(metric, EncodeTagSet(tags)), agg);
  });
  return snapshot;
}

// Through bytes, as over the network.
pb::MetricsDelta Wire(const MetricStore& store) {
  pb::MetricsDelta delta;
  StoreToProto(store, &delta);
  std::string bytes;
  EXPECT_TRUE(delta.SerializeToString(&bytes));
  pb::MetricsDelta parsed;
  EXPECT_TRUE(parsed.ParseFromString(bytes));
  return parsed;
}

void ExpectSameStore(const MetricStore& actual, const MetricStore& expected) {
  EXPECT_EQ(actual.defs(), expected.defs());
  EXPECT_EQ(actual.series_count(), expected.series_count());
  const Snapshot a = SnapshotOf(actual);
  const Snapshot e = SnapshotOf(expected);
  for (const auto& [key, agg] : e) {
    auto it = a.find(key);
    if (it == a.end()) {
      ADD_FAILURE() << "missing series " << key.first << " {" << key.second << "}";
    } else {
      EXPECT_TRUE(it->second == agg) << key.first << " {" << key.second << "}";
    }
  }
}

// k6's TrendSink.P over the raw samples.
double ExactK6Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const double i = p * static_cast<double>(values.size() - 1);
  const double j = values[static_cast<size_t>(std::floor(i))];
  const double k = values[static_cast<size_t>(std::ceil(i))];
  return j + (k - j) * (i - std::floor(i));
}

TEST(WireTest, RoundTripIsExactForEveryTypeWithTags) {
  constexpr double kMax = std::numeric_limits<double>::max();
  constexpr double kTiny = std::numeric_limits<double>::denorm_min();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  MetricStore store = StoreWithDefs();
  const TagSet ok{{"method", "SayHello"}, {"status", "0"}};
  const TagSet odd{{"name", "a,b=c\\d"}, {"", ""}, {"é", "日本"}};
  int64_t t = 1'700'000'000'000'000'000;
  for (double v : {12.5, 0.25, 3000.0, 1e-3, 7.0}) store.Add("grpc_req_duration", ok, v, t++);
  for (double v : {-5.0, 0.0, -0.0, 1e300, -1e-300, kTiny, -kMax, kMax, 42.0, 0.0}) {
    store.Add("custom", odd, v, t++);
  }
  store.Add("custom", {{"case", "infinite"}}, kInf, t++);
  store.Add("custom", {{"case", "infinite"}}, 1, t++);
  store.Add("custom", {{"case", "infinite"}}, -kMax, t++);
  store.Add("data_sent", ok, 1024, t);
  store.Add("data_sent", ok, 512, t - 5);
  store.Add("data_sent", {}, 1, t);
  store.Add("vus", {}, 10, t);
  store.Add("vus", {}, 7, t);  // a tie in time: the larger value stays last
  store.Add("vus", {}, 3, t - 1);
  store.Add("checks", {{"check", "status is OK"}}, 1, t);
  store.Add("checks", {{"check", "status is OK"}}, 0, t + 1);
  store.Add("checks", {{"check", "status is OK"}}, 1, t + 2);
  store.Add("vus", {{"scenario", "empty"}}, std::nan(""), t);  // a series without samples

  const pb::MetricsDelta delta = Wire(store);
  EXPECT_EQ(delta.definitions_size(), 5);
  EXPECT_EQ(delta.series_size(), 8);

  // From the smallest subnormal to the largest double: about 145000
  // buckets on each side, beyond the default limit.
  WireLimits limits;
  limits.max_buckets_per_histogram = 1 << 20;
  MetricStore copy;
  const absl::Status status = MergeFromProto(delta, copy, limits, "agent a-1");
  ASSERT_TRUE(status.ok()) << status;
  ExpectSameStore(copy, store);
  const std::optional<Aggregate> custom = copy.Query("custom", odd);
  ASSERT_TRUE(custom.has_value());
  EXPECT_EQ(custom->count(), 10u);
  EXPECT_EQ(custom->min(), -kMax);
  EXPECT_EQ(custom->max(), kMax);
  EXPECT_EQ(custom->histogram().zero_count(), 3u);
  EXPECT_TRUE(custom->histogram().Consistent());
  EXPECT_EQ(copy.Query("vus")->last(), 10);
}

TEST(WireTest, RoundTripOfAnEmptyStoreKeepsDefinitions) {
  const MetricStore store = StoreWithDefs();
  MetricStore copy;
  ASSERT_TRUE(MergeFromProto(Wire(store), copy, {}, "").ok());
  ExpectSameStore(copy, store);
  EXPECT_TRUE(copy.empty());
}

TEST(WireTest, SumMadeNaNByInfinitiesOfBothSignsIsAccepted) {
  MetricStore store = StoreWithDefs();
  store.Add("data_sent", {}, std::numeric_limits<double>::infinity(), 1);
  store.Add("data_sent", {}, -std::numeric_limits<double>::infinity(), 2);
  MetricStore copy;
  ASSERT_TRUE(MergeFromProto(Wire(store), copy, {}, "agent a-1").ok());
  EXPECT_EQ(copy.Query("data_sent")->count(), 2u);
  EXPECT_TRUE(std::isnan(copy.Query("data_sent")->sum()));
}

// Four agents each got a quarter of the samples; the controller merges their
// deltas. DESIGN.md: the same as one agent over all of them, exactly, and
// quantiles within 1 % of the raw samples'.
TEST(WireTest, DeltasOfQuartersMergeToTheWhole) {
  std::mt19937_64 rng(20240611);
  std::lognormal_distribution<double> latency(std::log(50.0), 1.0);
  // On a 1/1024 grid with bounded magnitude, every partial sum is exact,
  // so sums agree in any merge order.
  auto grid = [](double v) { return std::round(v * 1024) / 1024; };
  const std::vector<TagSet> tag_sets = {{{"method", "SayHello"}, {"status", "0"}},
                                        {{"method", "SayHello"}, {"status", "14"}},
                                        {{"method", "BidiHello"}, {"status", "0"}}};
  MetricStore whole = StoreWithDefs();
  std::vector<MetricStore> quarters(4, StoreWithDefs());
  std::vector<double> latencies;
  std::map<std::string, std::vector<double>> latencies_by_method;
  for (int k = 0; k < 200'000; ++k) {
    MetricStore& quarter = quarters[rng() % 4];
    const TagSet& tags = tag_sets[rng() % tag_sets.size()];
    const int64_t time_ns = static_cast<int64_t>(rng() % 1000);  // ties for gauges
    auto add = [&](const std::string& metric, const TagSet& t, double value) {
      whole.Add(metric, t, value, time_ns);
      quarter.Add(metric, t, value, time_ns);
    };
    const double ms = grid(latency(rng));
    latencies.push_back(ms);
    latencies_by_method[tags.at("method")].push_back(ms);
    add("grpc_req_duration", tags, ms);
    add("data_sent", tags, static_cast<double>(rng() % 4096));
    add("checks", tags, rng() % 10 == 0 ? 0 : 1);
    if (k % 10 == 0) add("vus", {}, static_cast<double>(rng() % 100));
    const double custom = rng() % 5 == 0 ? 0 : static_cast<double>(rng() % 2001) / 8 - 125;
    add("custom", {{"sign", "both"}}, custom);
  }

  std::vector<pb::MetricsDelta> deltas;
  for (const MetricStore& quarter : quarters) deltas.push_back(Wire(quarter));
  MetricStore forward;
  for (const pb::MetricsDelta& delta : deltas) {
    ASSERT_TRUE(MergeFromProto(delta, forward, {}, "agent").ok());
  }
  ExpectSameStore(forward, whole);
  MetricStore backward;
  for (auto it = deltas.rbegin(); it != deltas.rend(); ++it) {
    ASSERT_TRUE(MergeFromProto(*it, backward, {}, "agent").ok());
  }
  ExpectSameStore(backward, whole);

  const std::optional<Aggregate> merged = forward.Query("grpc_req_duration");
  ASSERT_TRUE(merged.has_value());
  EXPECT_TRUE(*merged == *whole.Query("grpc_req_duration"));
  EXPECT_EQ(merged->count(), latencies.size());
  EXPECT_EQ(merged->min(), *std::min_element(latencies.begin(), latencies.end()));
  EXPECT_EQ(merged->max(), *std::max_element(latencies.begin(), latencies.end()));
  for (double p : {0.5, 0.9, 0.95, 0.99}) {
    const double exact = ExactK6Percentile(latencies, p);
    EXPECT_NEAR(merged->histogram().Quantile(p), exact, 0.01 * exact) << "p" << p * 100;
    for (const auto& [method, values] : latencies_by_method) {
      const double exact_method = ExactK6Percentile(values, p);
      EXPECT_NEAR(forward.Query("grpc_req_duration", {{"method", method}})->histogram().Quantile(p),
                  exact_method, 0.01 * exact_method)
          << method << " p" << p * 100;
    }
  }
}

// --- Validation: one valid delta, broken one way per case. ---

constexpr char kWhere[] = "agent a-1";
const TagSet kTags{{"k", "v"}};

// A delta of the five definitions and one series of `metric` (tags k=v):
// counter data_sent 10@100 20@200; gauge vus 3@100 5@200; rate checks
// 1@100 0@200; trend grpc_req_duration -2@100 0@150 8@200.
pb::MetricsDelta ValidDelta(const std::string& metric) {
  MetricStore store = StoreWithDefs();
  if (metric == "data_sent") {
    store.Add(metric, kTags, 10, 100);
    store.Add(metric, kTags, 20, 200);
  } else if (metric == "vus") {
    store.Add(metric, kTags, 3, 100);
    store.Add(metric, kTags, 5, 200);
  } else if (metric == "checks") {
    store.Add(metric, kTags, 1, 100);
    store.Add(metric, kTags, 0, 200);
  } else {
    store.Add(metric, kTags, -2, 100);
    store.Add(metric, kTags, 0, 150);
    store.Add(metric, kTags, 8, 200);
  }
  pb::MetricsDelta delta;
  StoreToProto(store, &delta);
  EXPECT_EQ(delta.series_size(), 1);
  return delta;
}

// What the delta lands in: the same definitions and one series per metric
// under other tags, so that "unchanged" means something.
MetricStore Receiver() {
  MetricStore store = StoreWithDefs();
  for (const char* metric : {"data_sent", "vus", "checks", "grpc_req_duration"}) {
    store.Add(metric, {{"k", "other"}}, 1, 50);
  }
  return store;
}

struct InvalidCase {
  std::string name;
  std::string metric;  // whose series ValidDelta holds
  std::function<void(pb::MetricsDelta&, WireLimits&)> breakit;
  std::string message;  // after "agent a-1: "
};

std::vector<InvalidCase> InvalidCases() {
  const std::string trend = "metric 'grpc_req_duration' {k=v}: ";
  const std::string counter = "metric 'data_sent' {k=v}: ";
  const int64_t lo = Histogram::MinBucket();
  const int64_t hi = Histogram::MaxBucket();
  const std::string range = absl::StrCat("beyond the histogram's range [", lo, ", ", hi, "]");
  auto series = [](pb::MetricsDelta& d) { return d.mutable_series(0); };
  auto def = [](pb::MetricsDelta& d, const std::string& name) {
    for (pb::MetricDefinition& m : *d.mutable_definitions()) {
      if (m.name() == name) return &m;
    }
    ADD_FAILURE() << "no definition " << name;
    return d.add_definitions();
  };
  return {
      {"DefinitionWithoutName", "vus",
       [](pb::MetricsDelta& d, WireLimits&) {
         d.add_definitions()->set_type(pb::METRIC_TYPE_GAUGE);
       },
       "definition #5 has no name"},
      {"UnknownType", "vus",
       [=](pb::MetricsDelta& d, WireLimits&) {
         def(d, "vus")->set_type(static_cast<pb::MetricType>(99));
       },
       "metric 'vus': unknown type 99"},
      {"UnspecifiedType", "vus",
       [=](pb::MetricsDelta& d, WireLimits&) {
         def(d, "vus")->set_type(pb::METRIC_TYPE_UNSPECIFIED);
       },
       "metric 'vus': unknown type 0"},
      {"UnknownValueType", "vus",
       [=](pb::MetricsDelta& d, WireLimits&) {
         def(d, "vus")->set_contains(static_cast<pb::ValueType>(7));
       },
       "metric 'vus': unknown value type 7"},
      {"DefinitionConflictsWithReceiver", "vus",
       [=](pb::MetricsDelta& d, WireLimits&) { def(d, "vus")->set_type(pb::METRIC_TYPE_COUNTER); },
       "metric 'vus' is a gauge (default) here, but the delta defines it as a counter (default)"},
      {"DefinedTwiceDifferently", "vus",
       [](pb::MetricsDelta& d, WireLimits&) {
         pb::MetricDefinition* a = d.add_definitions();
         a->set_name("new_one");
         a->set_type(pb::METRIC_TYPE_TREND);
         a->set_contains(pb::VALUE_TYPE_TIME);
         pb::MetricDefinition* b = d.add_definitions();
         *b = *a;
         b->set_contains(pb::VALUE_TYPE_DATA);
       },
       "metric 'new_one' is defined twice, as a trend (time) and as a trend (data)"},
      {"SeriesOfUndefinedMetric", "vus",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_metric("nope"); },
       "metric 'nope' {k=v}: the metric is not defined"},
      {"MinIsNaN", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_min(std::nan("")); },
       counter + "min is NaN"},
      {"MaxIsNaN", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_max(std::nan("")); },
       counter + "max is NaN"},
      {"LastIsNaN", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_last(std::nan("")); },
       counter + "last is NaN"},
      {"SumIsNaNWithSamplesOfOneSign", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_sum(std::nan("")); },
       counter + "sum is NaN, though no samples of both signs could make it so"},
      {"SumWithoutSamples", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_count(0); },
       counter + "sum 30 without samples"},
      {"MinAboveMax", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_min(30); },
       counter + "min 30 > max 20"},
      {"LastOutsideMinMax", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_last(25); },
       counter + "last 25 outside [min 10, max 20]"},
      {"LastBeforeFirstSeen", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_first_seen_ns(300); },
       counter + "last_time_ns 200 < first_seen_ns 300"},
      {"PassesAboveCount", "checks",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_passes(3); },
       "metric 'checks' {k=v}: passes 3 > count 2"},
      {"PassesOnACounter", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_passes(1); },
       counter + "passes 1 on a counter"},
      {"SumOnAGauge", "vus", [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_sum(8); },
       "metric 'vus' {k=v}: sum 8 on a gauge"},
      {"HistogramOnACounter", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->mutable_histogram()->set_zero_count(1); },
       counter + "histogram on a counter"},
      {"BucketsBelowMinBucket", "grpc_req_duration",
       [=](pb::MetricsDelta& d, WireLimits&) {
         series(d)->mutable_histogram()->mutable_negative()->set_offset(
             static_cast<int32_t>(lo - 1));
       },
       trend + absl::StrCat("negative buckets [", lo - 1, ", ", lo - 1, "] ", range)},
      {"BucketsAboveMaxBucket", "grpc_req_duration",
       [=](pb::MetricsDelta& d, WireLimits&) {
         pb::BucketSpan* positive = series(d)->mutable_histogram()->mutable_positive();
         positive->set_offset(static_cast<int32_t>(hi));
         positive->add_counts(0);
       },
       trend + absl::StrCat("positive buckets [", hi, ", ", hi + 1, "] ", range)},
      {"BucketCountsOverflow", "grpc_req_duration",
       [=](pb::MetricsDelta& d, WireLimits&) {
         series(d)->mutable_histogram()->mutable_positive()->add_counts(
             std::numeric_limits<uint64_t>::max());
       },
       trend + "bucket counts overflow"},
      {"BucketsDoNotAddUpToCount", "grpc_req_duration",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->mutable_histogram()->set_zero_count(2); },
       trend + "buckets and zero_count hold 4 samples, count is 3"},
      {"BucketsDisagreeWithMinAndMax", "grpc_req_duration",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_min(1); },
       trend + "buckets (1 negative, 1 zero, 1 positive) disagree with min 1 and max 8"},
      {"TooManyBuckets", "grpc_req_duration",
       [](pb::MetricsDelta&, WireLimits& limits) { limits.max_buckets_per_histogram = 1; },
       trend + "histogram of 2 buckets, more than the limit of 1"},
      {"TooManySeriesInOneDelta", "vus",
       [](pb::MetricsDelta&, WireLimits& limits) { limits.max_series = 1; },
       "2 series in one delta, more than the limit of 1"},
      {"CounterSumAboveCountTimesMax", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_sum(50); },
       counter + "sum 50 outside count x [min, max] = [20, 40]"},
      {"TrendSumBelowCountTimesMin", "grpc_req_duration",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_sum(-7); },
       trend + "sum -7 outside count x [min, max] = [-6, 24]"},
      {"CountTooLargeForOneDelta", "data_sent",
       [=](pb::MetricsDelta& d, WireLimits&) { series(d)->set_count((uint64_t{1} << 40) + 1); },
       counter + "count 1099511627777 in one delta, more than the limit of 1099511627776"},
      {"DefinitionNameTooLong", "vus",
       [](pb::MetricsDelta& d, WireLimits&) {
         pb::MetricDefinition* m = d.add_definitions();
         m->set_name(std::string(129, 'n'));
         m->set_type(pb::METRIC_TYPE_COUNTER);
         m->set_contains(pb::VALUE_TYPE_DEFAULT);
       },
       "definition #5: a name of 129 bytes, more than 128"},
      {"DefinitionNameWithAControlCharacter", "vus",
       [](pb::MetricsDelta& d, WireLimits&) {
         pb::MetricDefinition* m = d.add_definitions();
         m->set_name("bell\x07");
         m->set_type(pb::METRIC_TYPE_COUNTER);
         m->set_contains(pb::VALUE_TYPE_DEFAULT);
       },
       "definition #5: the name holds a control character"},
      {"TooManyMetrics", "vus",
       [](pb::MetricsDelta& d, WireLimits& limits) {
         limits.max_metrics = 5;  // the receiver has its five
         pb::MetricDefinition* m = d.add_definitions();
         m->set_name("sixth");
         m->set_type(pb::METRIC_TYPE_COUNTER);
         m->set_contains(pb::VALUE_TYPE_DEFAULT);
       },
       "metric 'sixth': a new metric beyond the limit of 5 metrics"},
      {"DroppedCountsTooLarge", "vus",
       [](pb::MetricsDelta& d, WireLimits&) { d.set_dropped_samples((uint64_t{1} << 40) + 1); },
       "dropped_samples 1099511627777, more than the limit of 1099511627776"},
  };
}

class WireInvalidTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(WireInvalidTest, IsRefusedWithItsMessageAndNothingMerged) {
  const InvalidCase& c = GetParam();
  // The unbroken delta merges, so each case fails for its own reason only.
  {
    MetricStore into = Receiver();
    ASSERT_TRUE(MergeFromProto(ValidDelta(c.metric), into, {}, kWhere).ok());
    ASSERT_EQ(into.series_count(), 5u);
  }
  pb::MetricsDelta delta = ValidDelta(c.metric);
  WireLimits limits;
  c.breakit(delta, limits);
  // A valid series ahead of the broken one: it must not be merged either.
  *delta.add_series() = ValidDelta("vus").series(0);
  (*delta.mutable_series(1)->mutable_tags())["k"] = "first";
  delta.mutable_series()->SwapElements(0, 1);
  MetricStore into = Receiver();
  const Snapshot before = SnapshotOf(into);
  const auto defs_before = into.defs();
  const absl::Status status = MergeFromProto(delta, into, limits, kWhere);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), absl::StrCat(kWhere, ": ", c.message));
  EXPECT_EQ(into.defs(), defs_before);
  EXPECT_TRUE(SnapshotOf(into) == before);
}

INSTANTIATE_TEST_SUITE_P(EveryCheck, WireInvalidTest, ::testing::ValuesIn(InvalidCases()),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

TEST(WireTest, MessageHasNoPrefixWithoutWhere) {
  pb::MetricsDelta delta = ValidDelta("vus");
  delta.mutable_series(0)->set_metric("nope");
  MetricStore into;
  const absl::Status status = MergeFromProto(delta, into, {}, "");
  EXPECT_EQ(status.message(), "metric 'nope' {k=v}: the metric is not defined");
  EXPECT_TRUE(into.defs().empty());
}

// --- Limits ---

TEST(WireTest, SeriesLimitCountsOnlySeriesTheReceiverLacks) {
  WireLimits limits;
  limits.max_series = 2;
  MetricStore into;
  MergeReport report;
  // The same new series twice in one delta is one series (merged twice).
  pb::MetricsDelta twice = ValidDelta("data_sent");
  *twice.add_series() = twice.series(0);
  ASSERT_TRUE(MergeFromProto(twice, into, limits, kWhere, &report).ok());
  EXPECT_EQ(into.series_count(), 1u);
  EXPECT_EQ(into.Query("data_sent")->count(), 4u);
  EXPECT_EQ(into.Query("data_sent")->sum(), 60);
  // A series the receiver has is no new one.
  ASSERT_TRUE(MergeFromProto(ValidDelta("data_sent"), into, limits, kWhere, &report).ok());
  EXPECT_EQ(into.Query("data_sent")->count(), 6u);
  // A new one fills the store to the limit.
  pb::MetricsDelta other = ValidDelta("data_sent");
  (*other.mutable_series(0)->mutable_tags())["k"] = "w";
  ASSERT_TRUE(MergeFromProto(other, into, limits, kWhere, &report).ok());
  EXPECT_EQ(into.series_count(), 2u);
  EXPECT_EQ(report.dropped_series, 0u);
}

// Issue 13, item 7: at the limit, a delta that brings new series and
// samples of existing ones loses only the new series; the rest merges
// exactly, and what was dropped is counted and named.
TEST(WireTest, NewSeriesBeyondTheLimitAreDroppedAndCountedWhileExistingOnesMerge) {
  WireLimits limits;
  limits.max_series = 5;
  MetricStore into = Receiver();  // 4 series, data_sent {k=other} among them
  pb::MetricsDelta delta = ValidDelta("data_sent");  // data_sent {k=v}: new, fits (5)
  for (const char* k : {"x", "y"}) {                  // two more new ones: beyond
    *delta.add_series() = delta.series(0);
    (*delta.mutable_series(delta.series_size() - 1)->mutable_tags())["k"] = k;
  }
  *delta.add_series() = delta.series(0);
  (*delta.mutable_series(delta.series_size() - 1)->mutable_tags())["k"] = "other";  // existing
  MergeReport report;
  const absl::Status status = MergeFromProto(delta, into, limits, kWhere, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(into.series_count(), 5u);
  EXPECT_EQ(into.Query("data_sent", {{"k", "other"}})->count(), 3u);  // 1 + 2, exact
  EXPECT_EQ(into.Query("data_sent", {{"k", "v"}})->count(), 2u);
  EXPECT_FALSE(into.Query("data_sent", {{"k", "x"}}).has_value());
  EXPECT_EQ(report.dropped_series, 2u);
  EXPECT_EQ(report.dropped_samples, 4u);
  EXPECT_EQ(report.first_dropped, "metric 'data_sent' {k=x}");
  EXPECT_EQ(report.why, "the limit of 5 series");
  // Without a report the drops still happen; they are just not told.
  MetricStore again = Receiver();
  ASSERT_TRUE(MergeFromProto(delta, again, limits, kWhere).ok());
  EXPECT_EQ(again.series_count(), 5u);
}

// A script whose tag explodes one metric's series in the very first delta
// (one short run, every series new at once) must not cost the built-in
// metrics their series: the metric with the fewest series gets in first,
// wherever the sender put it in the delta.
TEST(WireTest, AtTheLimitTheMetricWithTheMostNewSeriesIsTheOneCutShort) {
  WireLimits limits;
  limits.max_series = 4 + 3;  // the receiver's 4, and 3 new ones
  MetricStore into = Receiver();
  pb::MetricsDelta delta = ValidDelta("data_sent");
  for (int i = 0; i < 5; ++i) {  // 6 new data_sent series in all
    *delta.add_series() = delta.series(0);
    (*delta.mutable_series(delta.series_size() - 1)->mutable_tags())["k"] = absl::StrCat("id", i);
  }
  pb::MetricsDelta vus = ValidDelta("vus");  // one new vus series, last
  *delta.add_series() = vus.series(0);
  MergeReport report;
  ASSERT_TRUE(MergeFromProto(delta, into, limits, kWhere, &report).ok());
  EXPECT_EQ(into.series_count(), 7u);
  ASSERT_TRUE(into.Query("vus", {{"k", "v"}}).has_value());
  EXPECT_EQ(into.Query("vus", {{"k", "v"}})->count(), 2u);
  EXPECT_EQ(report.dropped_series, 4u);  // of data_sent's 6 new ones, 2 fit
  EXPECT_THAT(report.first_dropped, ::testing::StartsWith("metric 'data_sent'"));
}

TEST(WireTest, TagSetsOverTheByteLimitsAreDroppedAndCounted) {
  WireLimits limits;
  limits.max_tag_bytes = 100;
  MetricStore into = Receiver();
  pb::MetricsDelta delta = ValidDelta("data_sent");
  (*delta.mutable_series(0)->mutable_tags())["k"] = std::string(200, 'v');
  MergeReport report;
  ASSERT_TRUE(MergeFromProto(delta, into, limits, kWhere, &report).ok());
  EXPECT_EQ(into.series_count(), 4u);
  EXPECT_EQ(report.dropped_series, 1u);
  EXPECT_EQ(report.dropped_samples, 2u);
  EXPECT_EQ(report.why, "the limit of 100 tag bytes per series");
  // The name in the report is cut short: a warning line, not the tag.
  EXPECT_LT(report.first_dropped.size(), 150u);
  EXPECT_THAT(report.first_dropped, ::testing::StartsWith("metric 'data_sent' {k=vvvv"));

  // All tag bytes of the store together: 30 MB tag values must not grow
  // the receiver without end.
  limits = WireLimits();
  limits.max_total_tag_bytes = into.tag_bytes() + 10;
  report = MergeReport();
  (*delta.mutable_series(0)->mutable_tags())["k"] = "0123456789abc";
  ASSERT_TRUE(MergeFromProto(delta, into, limits, kWhere, &report).ok());
  EXPECT_EQ(report.dropped_series, 1u);
  EXPECT_EQ(report.why, absl::StrCat("the limit of ", limits.max_total_tag_bytes, " tag bytes in all series"));
  (*delta.mutable_series(0)->mutable_tags())["k"] = "01";  // "k=01": 4 bytes, fits
  report = MergeReport();
  ASSERT_TRUE(MergeFromProto(delta, into, limits, kWhere, &report).ok());
  EXPECT_EQ(report.dropped_series, 0u);
  EXPECT_EQ(into.series_count(), 5u);
}

TEST(WireTest, CountsThatWouldWrapTheReceiverAreRefused) {
  WireLimits limits;
  limits.max_count = 5;
  MetricStore into;
  ASSERT_TRUE(MergeFromProto(ValidDelta("data_sent"), into, limits, kWhere).ok());
  ASSERT_TRUE(MergeFromProto(ValidDelta("data_sent"), into, limits, kWhere).ok());
  const absl::Status status = MergeFromProto(ValidDelta("data_sent"), into, limits, kWhere);
  EXPECT_EQ(status.message(),
            "agent a-1: metric 'data_sent' {k=v}: the count would reach 6, more than the limit of 5");
  EXPECT_EQ(into.Query("data_sent")->count(), 4u);
  // The default limit leaves room for any real run and none for a wrap.
  EXPECT_EQ(WireLimits().max_count, uint64_t{1} << 62);
}

TEST(WireTest, WhatTheSenderDroppedIsReported) {
  pb::MetricsDelta delta = ValidDelta("vus");
  delta.set_dropped_series(3);
  delta.set_dropped_samples(30);
  delta.set_first_dropped("metric 'big' {id=...}");
  MetricStore into;
  MergeReport report;
  ASSERT_TRUE(MergeFromProto(delta, into, {}, kWhere, &report).ok());
  EXPECT_EQ(report.dropped_series, 3u);
  EXPECT_EQ(report.dropped_samples, 30u);
  EXPECT_EQ(report.first_dropped, "metric 'big' {id=...}");
  EXPECT_EQ(into.Query("vus")->count(), 2u);
}

// Issue 13, item 8: one interval of any size gets through, in messages of
// bounded size that merge to the whole.
TEST(WireTest, StoreToProtosSplitsIntoBoundedMessagesThatMergeToTheWhole) {
  MetricStore store = StoreWithDefs();
  const std::string pad(3000, 'x');
  for (int i = 0; i < 3000; ++i) store.Add("custom", {{"id", absl::StrCat(pad, i)}}, i, 1000 + i);
  for (int i = 0; i < 100; ++i) store.Add("grpc_req_duration", {}, 0.5 + i, 1000 + i);
  store.Add("data_sent", {}, 7, 1);
  constexpr size_t kMax = 1 << 20;
  MetricStore copy;
  const std::vector<pb::MetricsDelta> deltas = StoreToProtos(store, kMax, WireLimits().max_tag_bytes);
  EXPECT_GE(deltas.size(), 9u);  // 3000 x 3 KB
  for (const pb::MetricsDelta& d : deltas) {
    EXPECT_LE(d.ByteSizeLong(), kMax);
    std::string bytes;
    ASSERT_TRUE(d.SerializeToString(&bytes));
    pb::MetricsDelta parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    // Each message stands alone: it defines what it names.
    MetricStore alone;
    ASSERT_TRUE(MergeFromProto(parsed, alone, {}, "").ok());
    ASSERT_TRUE(MergeFromProto(parsed, copy, {}, "").ok());
  }
  ExpectSameStore(copy, store);
  // A store with no series still sends its definitions once.
  const std::vector<pb::MetricsDelta> empty = StoreToProtos(StoreWithDefs(), kMax, WireLimits().max_tag_bytes);
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(empty[0].definitions_size(), 5);
}

TEST(WireTest, StoreToProtosLeavesOutTagSetsOverTheLimitAndCountsThem) {
  MetricStore store = StoreWithDefs();
  store.Add("custom", {{"id", std::string(500, 'x')}}, 1, 1);
  store.Add("custom", {{"id", std::string(500, 'x')}}, 2, 2);
  store.Add("custom", {{"id", "short"}}, 3, 3);
  const std::vector<pb::MetricsDelta> deltas = StoreToProtos(store, 1 << 20, /*max_tag_bytes=*/100);
  ASSERT_EQ(deltas.size(), 1u);
  EXPECT_EQ(deltas[0].series_size(), 1);
  EXPECT_EQ(deltas[0].dropped_series(), 1u);
  EXPECT_EQ(deltas[0].dropped_samples(), 2u);
  EXPECT_THAT(deltas[0].first_dropped(), ::testing::StartsWith("metric 'custom' {id=xxx"));
  EXPECT_LT(deltas[0].first_dropped().size(), 150u);
}

TEST(WireTest, BucketLimitIsInclusive) {
  WireLimits limits;
  limits.max_buckets_per_histogram = 2;  // the trend's one negative, one positive
  MetricStore into;
  EXPECT_TRUE(MergeFromProto(ValidDelta("grpc_req_duration"), into, limits, kWhere).ok());
}

TEST(WireTest, DefaultLimitsTakeLatenciesButNotTheWholeDoubleRange) {
  MetricStore latencies = StoreWithDefs();
  for (double ms = 0.1; ms < 60'000; ms *= 1.001) latencies.Add("grpc_req_duration", {}, ms, 1);
  const pb::MetricsDelta delta = Wire(latencies);
  EXPECT_GT(delta.series(0).histogram().positive().counts_size(), 1000);
  MetricStore into;
  EXPECT_TRUE(MergeFromProto(delta, into, {}, kWhere).ok());

  MetricStore extremes = StoreWithDefs();
  extremes.Add("custom", {}, 1e-300, 1);
  extremes.Add("custom", {}, 1e300, 2);
  const absl::Status status = MergeFromProto(Wire(extremes), into, {}, kWhere);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              ::testing::StartsWith("agent a-1: metric 'custom' {}: histogram of "));
  EXPECT_THAT(std::string(status.message()),
              ::testing::EndsWith(" buckets, more than the limit of 65536"));
}

}  // namespace
}  // namespace barrage::metrics
