// A mergeable, log-bucketed histogram for Trend metrics.
//
// Values fall into buckets whose width grows geometrically, so any quantile
// read back is within kRelativeError of the exact quantile (k6's definition:
// linear interpolation at rank p*(n-1)) over the raw samples, whatever the
// range. count, sum, min and max are kept exactly. Two histograms merge
// bucket-wise: merging is exact, commutative and associative, so one agent
// or many over the same samples give the same histogram. Zero and negative
// values (custom Trends may hold them) have their own buckets.
//
// Not thread-safe; each owner (a worker's aggregator, the controller's
// store) serialises access.
#ifndef BARRAGE_COMMON_METRICS_HISTOGRAM_H_
#define BARRAGE_COMMON_METRICS_HISTOGRAM_H_

#include <cstdint>
#include <map>

namespace barrage::metrics {

class Histogram {
 public:
  // Half the relative width of a bucket: a bucket's representative value is
  // within this fraction of every value in the bucket.
  static constexpr double kRelativeError = 0.005;

  void Add(double value);
  void Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return count_ ? min_ : 0; }   // 0 when empty, as k6
  double max() const { return count_ ? max_ : 0; }
  double Mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }

  // p in [0, 1]. 0 when empty; the exact value when count() == 1; clamped
  // to [min, max]. Within kRelativeError*2 (< 1 %) of the exact answer.
  double Quantile(double p) const;

  // Wire form: bucket index -> count. Index i holds values v > 0 with
  // Bucket(v) == i; negative values are held by their magnitude.
  const std::map<int32_t, uint64_t>& positive_buckets() const { return positive_; }
  const std::map<int32_t, uint64_t>& negative_buckets() const { return negative_; }
  uint64_t zero_count() const { return zero_count_; }
  // Rebuilds a histogram from its wire form (the inverse of the accessors).
  static Histogram FromParts(std::map<int32_t, uint64_t> positive,
                             std::map<int32_t, uint64_t> negative, uint64_t zero_count,
                             uint64_t count, double sum, double min, double max);

  static int32_t Bucket(double magnitude);          // magnitude > 0
  static double BucketValue(int32_t bucket);        // the bucket's representative

  friend bool operator==(const Histogram&, const Histogram&) = default;

 private:
  std::map<int32_t, uint64_t> positive_;
  std::map<int32_t, uint64_t> negative_;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
  double sum_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_HISTOGRAM_H_
