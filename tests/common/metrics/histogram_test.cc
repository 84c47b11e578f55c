#include "common/metrics/histogram.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace barrage::metrics {
namespace {

using ::testing::ElementsAre;

constexpr double kE = Histogram::kRelativeError;

// k6's TrendSink.P over the raw samples: the reference every quantile is
// checked against.
double ExactK6Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  if (values.size() == 1) return values[0];
  std::sort(values.begin(), values.end());
  const double i = p * static_cast<double>(values.size() - 1);
  const double j = values[static_cast<size_t>(std::floor(i))];
  const double k = values[static_cast<size_t>(std::ceil(i))];
  return j + (k - j) * (i - std::floor(i));
}

int32_t ReferenceBucket(double v) {
  return static_cast<int32_t>(std::ceil(std::log(v) / std::log(Histogram::kGamma)));
}

Histogram Of(const std::vector<double>& values) {
  Histogram h;
  for (double v : values) h.Add(v);
  return h;
}

const std::vector<double> kPercentiles = {0,    0.001, 0.01, 0.1,  0.25,  0.5,
                                          0.75, 0.9,   0.95, 0.99, 0.999, 1};

TEST(HistogramBucketTest, MatchesExactLogMappingOverTheWholeRange) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-320, 308);
  for (int n = 0; n < 200000; ++n) {
    const double v = std::pow(10.0, exponent(rng));
    if (v <= 0 || !std::isfinite(v)) continue;
    ASSERT_EQ(Histogram::Bucket(v), ReferenceBucket(v)) << v;
  }
}

TEST(HistogramBucketTest, MatchesExactLogMappingAtBucketBoundaries) {
  // The hard cases for a fast approximation: values right at gamma^i.
  for (int32_t i = -2000; i <= 2000; ++i) {
    const double edge = std::pow(Histogram::kGamma, i);
    for (double v : {std::nextafter(edge, 0.0), edge, std::nextafter(edge, 2 * edge)}) {
      ASSERT_EQ(Histogram::Bucket(v), ReferenceBucket(v)) << v;
    }
  }
}

TEST(HistogramBucketTest, RepresentativeIsWithinRelativeErrorOfEveryValue) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> exponent(-12, 12);
  for (int n = 0; n < 100000; ++n) {
    const double v = std::pow(10.0, exponent(rng));
    const double rep = Histogram::BucketValue(Histogram::Bucket(v));
    ASSERT_LE(std::fabs(rep - v), kE * v * (1 + 1e-9)) << v;
  }
}

TEST(HistogramBucketTest, MappingIsMonotonic) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-5, 5);
  std::vector<double> values;
  for (int n = 0; n < 50000; ++n) values.push_back(std::pow(10.0, exponent(rng)));
  std::sort(values.begin(), values.end());
  for (size_t k = 1; k < values.size(); ++k) {
    ASSERT_LE(Histogram::Bucket(values[k - 1]), Histogram::Bucket(values[k]));
  }
}

TEST(HistogramBucketTest, ExtremesAndSubnormals) {
  const double tiny = std::numeric_limits<double>::denorm_min();
  const double huge = std::numeric_limits<double>::max();
  EXPECT_EQ(Histogram::Bucket(tiny), ReferenceBucket(tiny));
  EXPECT_EQ(Histogram::Bucket(1e-310), ReferenceBucket(1e-310));
  EXPECT_EQ(Histogram::Bucket(huge), ReferenceBucket(huge));
  EXPECT_EQ(Histogram::Bucket(std::numeric_limits<double>::infinity()), Histogram::MaxBucket());
  EXPECT_EQ(Histogram::Bucket(1.0), 0);
  EXPECT_LT(Histogram::MinBucket(), Histogram::MaxBucket());
}

struct Distribution {
  std::string name;
  std::function<double(std::mt19937_64&)> draw;
  int n;
};

void PrintTo(const Distribution& d, std::ostream* os) { *os << d.name << " n=" << d.n; }

class HistogramQuantileTest : public ::testing::TestWithParam<Distribution> {};

TEST_P(HistogramQuantileTest, WithinOnePercentOfK6Percentile) {
  const Distribution& d = GetParam();
  std::mt19937_64 rng(42);
  std::vector<double> values;
  for (int k = 0; k < d.n; ++k) values.push_back(d.draw(rng));
  const Histogram h = Of(values);
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  for (double p : kPercentiles) {
    const double exact = ExactK6Percentile(values, p);
    const double got = h.Quantile(p);
    // The design promise is 1 %; the histogram should in fact keep to e.
    EXPECT_LE(std::fabs(got - exact), 0.01 * std::fabs(exact)) << "p=" << p;
    EXPECT_LE(std::fabs(got - exact), kE * std::fabs(exact) * (1 + 1e-9)) << "p=" << p;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Distributions, HistogramQuantileTest,
    ::testing::Values(
        Distribution{"uniform", [](auto& r) { return std::uniform_real_distribution<>(1, 500)(r); },
                     20000},
        Distribution{"exponential",
                     [](auto& r) { return std::exponential_distribution<>(1.0 / 30)(r); }, 20000},
        Distribution{"lognormal", [](auto& r) { return std::lognormal_distribution<>(3, 1.5)(r); },
                     20000},
        Distribution{"constant", [](auto&) { return 12.345; }, 1000},
        Distribution{"two_values", [](auto& r) { return r() % 2 ? 1.0 : 1000.0; }, 1001},
        Distribution{"tiny_n", [](auto& r) { return std::uniform_real_distribution<>(0.1, 9)(r); },
                     3},
        Distribution{"pair", [](auto& r) { return std::uniform_real_distribution<>(5, 6)(r); }, 2},
        Distribution{"negative", [](auto& r) { return -std::lognormal_distribution<>(2, 1)(r); },
                     10000},
        Distribution{
            "wide_range",
            [](auto& r) { return std::pow(10.0, std::uniform_real_distribution<>(-6, 6)(r)); },
            10000},
        Distribution{"integers_with_zeros", [](auto& r) { return static_cast<double>(r() % 5); },
                     5000}),
    [](const auto& test) { return test.param.name; });

TEST(HistogramTest, MixedSignsStayWithinErrorOfTheInterpolatedMagnitudes) {
  std::mt19937_64 rng(5);
  std::normal_distribution<> normal(0, 100);
  std::vector<double> values;
  for (int k = 0; k < 10000; ++k) values.push_back(normal(rng));
  const Histogram h = Of(values);
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double p : kPercentiles) {
    const double i = p * static_cast<double>(sorted.size() - 1);
    const double bound = std::max(std::fabs(sorted[static_cast<size_t>(std::floor(i))]),
                                  std::fabs(sorted[static_cast<size_t>(std::ceil(i))]));
    EXPECT_LE(std::fabs(h.Quantile(p) - ExactK6Percentile(values, p)), kE * bound * (1 + 1e-9))
        << "p=" << p;
  }
}

TEST(HistogramTest, EmptyGivesZeros) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Quantile(0.5), 0);
  EXPECT_EQ(h.Quantile(0.99), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.Mean(), 0);
}

TEST(HistogramTest, SingleValueIsExact) {
  const Histogram h = Of({123.456789});
  for (double p : kPercentiles) EXPECT_EQ(h.Quantile(p), 123.456789);
  const Histogram negative = Of({-0.001});
  EXPECT_EQ(negative.Quantile(0.5), -0.001);
}

TEST(HistogramTest, ExtremesAreExactAndResultsClamped) {
  const Histogram h = Of({10.001, 10.002, 10.003});
  EXPECT_EQ(h.Quantile(0), 10.001);
  EXPECT_EQ(h.Quantile(1), 10.003);
  // All three share a bucket; clamping keeps answers inside [min, max].
  for (double p : kPercentiles) {
    EXPECT_GE(h.Quantile(p), 10.001);
    EXPECT_LE(h.Quantile(p), 10.003);
  }
  EXPECT_EQ(h.Quantile(-1), 10.001);
  EXPECT_EQ(h.Quantile(2), 10.003);
}

TEST(HistogramTest, CountSumMinMaxMeanAreExact) {
  const Histogram h = Of({1, 2, 3, 4, -10, 0});
  EXPECT_EQ(h.count(), 6u);
  EXPECT_EQ(h.sum(), 0);
  EXPECT_EQ(h.min(), -10);
  EXPECT_EQ(h.max(), 4);
  EXPECT_EQ(h.Mean(), 0);
  EXPECT_EQ(h.zero_count(), 1u);
}

TEST(HistogramTest, DropsNanAndKeepsInfinity) {
  Histogram h = Of({1, std::nan(""), 2});
  EXPECT_EQ(h.count(), 2u);
  h.Add(std::numeric_limits<double>::infinity());
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.max(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(h.Quantile(0), 1);
  EXPECT_TRUE(h.Consistent());
}

TEST(HistogramTest, WireFormIsTrimmedAndRoundTrips) {
  const Histogram h = Of({1.0, 1.0, 1.2, -3, 0, 0, 5000});
  const Histogram::BucketSpan positive = h.positive_buckets();
  ASSERT_FALSE(positive.counts.empty());
  EXPECT_EQ(positive.offset, Histogram::Bucket(1.0));
  EXPECT_EQ(positive.counts.front(), 2u);
  EXPECT_EQ(positive.counts.back(), 1u);
  EXPECT_EQ(static_cast<int32_t>(positive.offset + positive.counts.size() - 1),
            Histogram::Bucket(5000));
  const Histogram::BucketSpan negative = h.negative_buckets();
  EXPECT_EQ(negative.offset, Histogram::Bucket(3));
  EXPECT_THAT(std::vector<uint64_t>(negative.counts.begin(), negative.counts.end()),
              ElementsAre(1u));
  EXPECT_TRUE(Histogram().positive_buckets().counts.empty());

  const Histogram copy = Histogram::FromParts(h.positive_buckets(), h.negative_buckets(),
                                              h.zero_count(), h.count(), h.sum(), h.min(), h.max());
  EXPECT_EQ(copy, h);
  EXPECT_TRUE(copy.Consistent());
  for (double p : kPercentiles) EXPECT_EQ(copy.Quantile(p), h.Quantile(p));
}

TEST(HistogramTest, InconsistentWireDataIsDetectedNotTrusted) {
  const std::vector<uint64_t> counts = {1, 2};
  // A count that disagrees with the buckets.
  EXPECT_FALSE(Histogram::FromParts({0, counts}, {}, 0, 5, 3, 1, 1.01).Consistent());
  // Indices no double maps to are dropped, not allocated for.
  const Histogram bad = Histogram::FromParts({2'000'000'000, counts}, {}, 0, 3, 3, 1, 1);
  EXPECT_FALSE(bad.Consistent());
  EXPECT_TRUE(bad.positive_buckets().counts.empty());
  EXPECT_TRUE(Histogram::FromParts({0, counts}, {}, 0, 3, 3, 1, 1.01).Consistent());
}

TEST(HistogramTest, EqualityIgnoresLayout) {
  // Same samples added in opposite orders grow the dense arrays differently.
  std::vector<double> values;
  for (int k = 1; k <= 3000; ++k) values.push_back(k * 0.25);
  Histogram up = Of(values);
  std::reverse(values.begin(), values.end());
  Histogram down = Of(values);
  EXPECT_EQ(up, down);
  down.Add(1);
  EXPECT_FALSE(up == down);
}

// Typed over ways of cutting one sample stream in parts.
std::vector<double> Samples(int seed, int n) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<> lognormal(2, 2);
  std::vector<double> values;
  for (int k = 0; k < n; ++k) {
    // Multiples of 1/64 keep every partial sum exact, so sums compare equal
    // whatever the merge order.
    double v = std::round(lognormal(rng) * 64) / 64;
    if (k % 7 == 0) v = -v;
    if (k % 31 == 0) v = 0;
    values.push_back(v);
  }
  return values;
}

TEST(HistogramMergeTest, IsCommutative) {
  const Histogram a = Of(Samples(1, 1000));
  const Histogram b = Of(Samples(2, 3000));
  Histogram ab = a;
  ab.Merge(b);
  Histogram ba = b;
  ba.Merge(a);
  EXPECT_EQ(ab, ba);
}

TEST(HistogramMergeTest, IsAssociative) {
  const Histogram a = Of(Samples(1, 1000));
  const Histogram b = Of(Samples(2, 500));
  const Histogram c = Of(Samples(3, 2000));
  Histogram left = a;
  left.Merge(b);
  left.Merge(c);
  Histogram bc = b;
  bc.Merge(c);
  Histogram right = a;
  right.Merge(bc);
  EXPECT_EQ(left, right);
}

TEST(HistogramMergeTest, SplitMergedEqualsWhole) {
  const std::vector<double> values = Samples(9, 10000);
  const Histogram whole = Of(values);
  for (size_t parts : {2u, 3u, 7u, 100u}) {
    std::vector<Histogram> pieces(parts);
    for (size_t k = 0; k < values.size(); ++k) pieces[k % parts].Add(values[k]);
    Histogram merged;
    for (const Histogram& piece : pieces) merged.Merge(piece);
    EXPECT_EQ(merged, whole) << parts << " parts";
    for (double p : kPercentiles) EXPECT_EQ(merged.Quantile(p), whole.Quantile(p));
  }
}

TEST(HistogramMergeTest, EmptyIsTheIdentity) {
  const Histogram a = Of(Samples(4, 100));
  Histogram left;
  left.Merge(a);
  Histogram right = a;
  right.Merge(Histogram());
  EXPECT_EQ(left, a);
  EXPECT_EQ(right, a);
}

}  // namespace
}  // namespace barrage::metrics

namespace barrage::metrics {
namespace {

// Quantiles (one walk) answers exactly what Quantile answers for each p:
// negative, zero and positive samples, ties, one and two samples.
TEST(HistogramQuantilesTest, EqualsQuantileForEveryP) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> wide(0, 50);
  const std::vector<double> ps = {0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1, -1, 2};
  for (int sizes : {1, 2, 3, 10, 1000, 20000}) {
    Histogram h;
    for (int i = 0; i < sizes; ++i) h.Add(i % 7 == 0 ? 0 : std::round(wide(rng) * 10) / 10);
    std::vector<double> got(ps.size());
    h.Quantiles(ps, got);
    for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(got[i], h.Quantile(ps[i])) << "n=" << sizes << " p=" << ps[i];
  }
  std::vector<double> none(2);
  Histogram().Quantiles(std::vector<double>{0.5, 0.9}, none);
  EXPECT_EQ(none, (std::vector<double>{0, 0}));
}

}  // namespace
}  // namespace barrage::metrics
