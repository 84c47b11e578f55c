#include "common/metrics/aggregate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace barrage::metrics {
namespace {

struct Sample {
  double value;
  int64_t time_ns;
};

// Values on a 1/8 grid and a few shared timestamps: sums stay exact in any
// order, and gauges meet ties that only the tie rule can settle.
std::vector<Sample> Samples(int seed, int n) {
  std::mt19937_64 rng(seed);
  std::vector<Sample> samples;
  for (int k = 0; k < n; ++k) {
    const double value = static_cast<double>(static_cast<int64_t>(rng() % 2001) - 1000) / 8;
    samples.push_back({rng() % 3 == 0 ? 0.0 : value, static_cast<int64_t>(rng() % 50)});
  }
  return samples;
}

Aggregate Of(MetricType type, const std::vector<Sample>& samples) {
  Aggregate agg(type);
  for (const Sample& s : samples) agg.Add(s.value, s.time_ns);
  return agg;
}

Aggregate Merged(Aggregate a, const Aggregate& b) {
  a.Merge(b);
  return a;
}

class AggregateMergeTest : public ::testing::TestWithParam<MetricType> {};

TEST_P(AggregateMergeTest, IsCommutative) {
  const Aggregate a = Of(GetParam(), Samples(1, 300));
  const Aggregate b = Of(GetParam(), Samples(2, 500));
  EXPECT_EQ(Merged(a, b), Merged(b, a));
}

TEST_P(AggregateMergeTest, IsAssociative) {
  const Aggregate a = Of(GetParam(), Samples(1, 300));
  const Aggregate b = Of(GetParam(), Samples(2, 200));
  const Aggregate c = Of(GetParam(), Samples(3, 400));
  EXPECT_EQ(Merged(Merged(a, b), c), Merged(a, Merged(b, c)));
}

TEST_P(AggregateMergeTest, SplitMergedEqualsWhole) {
  const std::vector<Sample> samples = Samples(7, 2000);
  const Aggregate whole = Of(GetParam(), samples);
  for (size_t parts : {2u, 5u, 64u}) {
    std::vector<Aggregate> pieces(parts, Aggregate(GetParam()));
    for (size_t k = 0; k < samples.size(); ++k) {
      pieces[(k * 7919) % parts].Add(samples[k].value, samples[k].time_ns);
    }
    Aggregate forward(GetParam());
    for (const Aggregate& piece : pieces) forward.Merge(piece);
    Aggregate backward(GetParam());
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) backward.Merge(*it);
    EXPECT_EQ(forward, whole) << parts;
    EXPECT_EQ(backward, whole) << parts;
  }
}

TEST_P(AggregateMergeTest, EmptyIsTheIdentity) {
  const Aggregate a = Of(GetParam(), Samples(4, 50));
  EXPECT_EQ(Merged(Aggregate(GetParam()), a), a);
  EXPECT_EQ(Merged(a, Aggregate(GetParam())), a);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, AggregateMergeTest,
                         ::testing::Values(MetricType::kCounter, MetricType::kGauge,
                                           MetricType::kRate, MetricType::kTrend),
                         [](const auto& test) { return std::string(MetricTypeName(test.param)); });

TEST(AggregateTest, CounterSums) {
  const Aggregate agg = Of(MetricType::kCounter, {{1, 5}, {2, 3}, {0.5, 9}});
  EXPECT_EQ(agg.count(), 3u);
  EXPECT_EQ(agg.sum(), 3.5);
  EXPECT_EQ(agg.first_seen_ns(), 3);
  EXPECT_EQ(agg.last_time_ns(), 9);
}

TEST(AggregateTest, RatePassesAreNonZeroSamples) {
  const Aggregate agg = Of(MetricType::kRate, {{1, 0}, {0, 1}, {-2, 2}, {0.5, 3}, {0, 4}});
  EXPECT_EQ(agg.count(), 5u);
  EXPECT_EQ(agg.passes(), 3u);
}

TEST(AggregateTest, TrendFillsTheHistogram) {
  const Aggregate agg = Of(MetricType::kTrend, {{10, 0}, {20, 1}, {30, 2}});
  EXPECT_EQ(agg.histogram().count(), 3u);
  EXPECT_EQ(agg.sum(), 60);
  EXPECT_EQ(agg.min(), 10);
  EXPECT_EQ(agg.max(), 30);
  EXPECT_NEAR(agg.histogram().Quantile(0.5), 20, 20 * Histogram::kRelativeError);
}

TEST(AggregateTest, GaugeLastIsTheLatestSampleNotTheLastAdded) {
  const Aggregate agg = Of(MetricType::kGauge, {{5, 100}, {7, 300}, {3, 200}});
  EXPECT_EQ(agg.last(), 7);
  EXPECT_EQ(agg.last_time_ns(), 300);
  EXPECT_EQ(agg.min(), 3);
  EXPECT_EQ(agg.max(), 7);
}

TEST(AggregateTest, GaugeTieGoesToTheLargerValueInAnyOrder) {
  EXPECT_EQ(Of(MetricType::kGauge, {{4, 100}, {9, 100}}).last(), 9);
  EXPECT_EQ(Of(MetricType::kGauge, {{9, 100}, {4, 100}}).last(), 9);
  const Aggregate a = Of(MetricType::kGauge, {{1, 50}, {4, 100}});
  const Aggregate b = Of(MetricType::kGauge, {{9, 100}, {100, 20}});
  EXPECT_EQ(Merged(a, b).last(), 9);
  EXPECT_EQ(Merged(b, a).last(), 9);
  // +0 beats -0 on a tie, so even the sign bit is order-independent.
  EXPECT_FALSE(std::signbit(Of(MetricType::kGauge, {{-0.0, 1}, {0.0, 1}}).last()));
  EXPECT_FALSE(std::signbit(Of(MetricType::kGauge, {{0.0, 1}, {-0.0, 1}}).last()));
}

TEST(AggregateTest, EmptyReadsZero) {
  const Aggregate agg(MetricType::kGauge);
  EXPECT_EQ(agg.count(), 0u);
  EXPECT_EQ(agg.min(), 0);
  EXPECT_EQ(agg.max(), 0);
  EXPECT_EQ(agg.last(), 0);
}

TEST(AggregateTest, NanIsDropped) {
  const Aggregate agg = Of(MetricType::kTrend, {{1, 1}, {std::nan(""), 2}});
  EXPECT_EQ(agg.count(), 1u);
  EXPECT_EQ(agg.histogram().count(), 1u);
}

TEST(AggregateTest, FromPartsRebuilds) {
  const Aggregate agg = Of(MetricType::kTrend, Samples(3, 100));
  const Aggregate copy = Aggregate::FromParts(agg.type(), agg.count(), agg.sum(), agg.last(),
                                              agg.last_time_ns(), agg.min(), agg.max(),
                                              agg.passes(), agg.histogram(), agg.first_seen_ns());
  EXPECT_EQ(copy, agg);
}

TEST(AggregateDeathTest, MergingAnotherTypeAborts) {
  Aggregate counter(MetricType::kCounter);
  const Aggregate gauge(MetricType::kGauge);
  EXPECT_DEATH(counter.Merge(gauge), "Aggregate::Merge");
}

}  // namespace
}  // namespace barrage::metrics
