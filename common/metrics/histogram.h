// A mergeable, log-bucketed histogram for Trend metrics.
//
// Values fall into buckets whose width grows geometrically, so any quantile
// read back is within kRelativeError of the exact quantile (k6's definition:
// linear interpolation at rank p*(n-1)) over the raw samples, whatever the
// range. count, min and max are kept exactly; sum is a plain double sum (so
// exact for integers and other exactly representable partial sums, and
// within rounding otherwise). Two histograms merge bucket-wise: bucket
// counts merge exactly, commutatively and associatively, so one agent or
// many over the same samples give the same histogram. Zero and negative
// values (custom Trends may hold them) have their own buckets. NaN samples
// are dropped (they have no place in an order); infinities land in the
// outermost bucket and make min or max infinite.
//
// Buckets are dense arrays with an offset (the layout of OpenTelemetry's
// exponential histogram): Add is an index computation and an increment, no
// tree walk. Latencies from 0.1 ms to 60 s span about 1300 buckets (10 KB);
// the worst case, values over the whole double range, about 1.2 MB.
//
// Not thread-safe; each owner (a worker's aggregator, the controller's
// store) serialises access.
#ifndef BARRAGE_COMMON_METRICS_HISTOGRAM_H_
#define BARRAGE_COMMON_METRICS_HISTOGRAM_H_

#include <cstdint>
#include <span>
#include <vector>

namespace barrage::metrics {

class Histogram {
 public:
  // Half the relative width of a bucket: a bucket's representative value is
  // within this fraction of every value in the bucket.
  static constexpr double kRelativeError = 0.005;
  // gamma = (1 + e) / (1 - e): the ratio of a bucket's upper bound to its
  // lower bound. Bucket i holds magnitudes in (gamma^(i-1), gamma^i].
  static constexpr double kGamma = (1 + kRelativeError) / (1 - kRelativeError);

  // Consecutive buckets: counts[k] is the count of bucket offset + k. The
  // wire form (control.proto: sint32 offset, packed uint64 counts).
  struct BucketSpan {
    int32_t offset = 0;
    std::span<const uint64_t> counts;
  };

  void Add(double value);
  void Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return count_ ? min_ : 0; }  // 0 when empty, as k6
  double max() const { return count_ ? max_ : 0; }
  double Mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }

  // p in [0, 1] (clamped). 0 when empty; the exact value when count() == 1;
  // exact at p = 0 (min) and p = 1 (max); clamped to [min, max]. Otherwise
  // within kRelativeError of the exact answer when all samples have one
  // sign (< 1 % as DESIGN.md promises); across zero, within kRelativeError
  // of the larger magnitude of the two samples interpolated between.
  double Quantile(double p) const;
  // Quantile(ps[i]) into out[i] for every i, in one walk over the buckets
  // (the Prometheus endpoint reads four per series at each scrape).
  void Quantiles(std::span<const double> ps, std::span<double> out) const;
  // Same, and in the same walk the number of samples in buckets up to each
  // of `limits` (positive bucket indices, ascending) into counts: every
  // negative and zero sample, and the positive buckets i <= limits[j].
  void QuantilesAndCounts(std::span<const double> ps, std::span<double> out, std::span<const int32_t> limits,
                          std::span<uint64_t> counts) const;

  // Wire form, trimmed (first and last counts non-zero; empty when there is
  // no such value). Positive buckets hold values v > 0 with Bucket(v) == i;
  // negative buckets hold negative values by their magnitude. The spans are
  // valid until the next non-const call.
  BucketSpan positive_buckets() const { return positive_.Trimmed(); }
  BucketSpan negative_buckets() const { return negative_.Trimmed(); }
  uint64_t zero_count() const { return zero_count_; }
  // Rebuilds a histogram from its wire form (the inverse of the accessors).
  // The parts are taken as given: a peer's data should satisfy count ==
  // bucket total + zero_count (see Consistent()).
  static Histogram FromParts(BucketSpan positive, BucketSpan negative, uint64_t zero_count,
                             uint64_t count, double sum, double min, double max);
  // count() equals the bucket total, and every index is one Bucket() can
  // return. For checking data that came over the wire.
  bool Consistent() const;

  // ceil(log_gamma(magnitude)), computed without std::log in all but ~0.2 %
  // of cases (see histogram.cc). magnitude > 0; +inf maps as DBL_MAX.
  static int32_t Bucket(double magnitude);
  // The bucket's representative, 2 * gamma^i / (gamma + 1): within
  // kRelativeError of every magnitude in the bucket.
  static double BucketValue(int32_t bucket);
  // Bucket() of the smallest and largest positive doubles.
  static int32_t MinBucket();
  static int32_t MaxBucket();

  // Equal samples as far as a histogram can tell: same count, sum, min,
  // max and bucket counts, whatever the internal layout.
  friend bool operator==(const Histogram& a, const Histogram& b);

 private:
  // Counts for indices [offset_, offset_ + counts_.size()), grown on demand
  // with some slack so that a slowly widening range is not quadratic.
  class DenseBuckets {
   public:
    void Increment(int32_t index) {
      // One unsigned compare covers both ends (below offset_ wraps around).
      const uint64_t k = static_cast<uint64_t>(static_cast<int64_t>(index) - offset_);
      if (k < counts_.size()) {
        ++counts_[k];
      } else {
        Grow(index, index);
        ++counts_[index - offset_];
      }
    }
    void Add(int32_t index, uint64_t n);
    void Merge(const DenseBuckets& other);
    BucketSpan Trimmed() const;
    uint64_t Total() const;
    // Walks the non-zero buckets in index order (ascending or not). When
    // the 0-based *rank falls inside this array, sets *index to its bucket
    // and returns true; otherwise subtracts Total() from *rank.
    bool FindRank(bool ascending, uint64_t* rank, int32_t* index) const;

   private:
    void Grow(int32_t lo, int32_t hi);  // makes [lo, hi] addressable
    int64_t offset_ = 0;
    std::vector<uint64_t> counts_;
  };

  // The value at rank k (0-based) in sorted order, k < count_.
  double ValueAtRank(uint64_t k) const;

  DenseBuckets positive_;
  DenseBuckets negative_;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
  double sum_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_HISTOGRAM_H_
