// The aggregate of one series (a metric and one tag set) over an interval
// or a whole run, as DESIGN.md's metric model says: counters sum; gauges
// last (by sample time), min and max; rates passes and total; trends a
// mergeable histogram with exact count, sum, min and max. Merge is exact,
// commutative and associative.
#ifndef BARRAGE_COMMON_METRICS_AGGREGATE_H_
#define BARRAGE_COMMON_METRICS_AGGREGATE_H_

#include <cstdint>
#include <limits>

#include "common/metrics/histogram.h"
#include "common/metrics/metric.h"

namespace barrage::metrics {

class Aggregate {
 public:
  explicit Aggregate(MetricType type) : type_(type) {}

  // time_ns: sample time, Unix nanoseconds. It decides a gauge's last value
  // (the latest sample wins; on a tie, the larger value, so merge order
  // never matters) and first_seen_ns(). A NaN sample is dropped whole (not
  // counted), as the histogram must drop it. min and max are kept for every
  // type.
  void Add(double value, int64_t time_ns);
  // Same type required (BARRAGE_CHECK).
  void Merge(const Aggregate& other);

  MetricType type() const { return type_; }
  // Number of samples, every type.
  uint64_t count() const { return count_; }
  // Counter: the sum of the samples. Trend: the sum too.
  double sum() const { return sum_; }
  // Gauge: the latest sample's value, min and max (0 when empty).
  double last() const { return last_; }
  double min() const { return count_ ? min_ : 0; }
  double max() const { return count_ ? max_ : 0; }
  // Rate: samples that were non-zero; fails = count() - passes().
  uint64_t passes() const { return passes_; }
  // Trend only.
  const Histogram& histogram() const { return histogram_; }
  // The earliest sample's time: orders checks "in order of first use".
  int64_t first_seen_ns() const { return first_seen_ns_; }
  int64_t last_time_ns() const { return last_time_ns_; }

  // For rebuilding from the wire form.
  static Aggregate FromParts(MetricType type, uint64_t count, double sum, double last,
                             int64_t last_time_ns, double min, double max, uint64_t passes,
                             Histogram histogram, int64_t first_seen_ns);

  friend bool operator==(const Aggregate&, const Aggregate&) = default;

 private:
  MetricType type_;
  uint64_t count_ = 0;
  double sum_ = 0;
  double last_ = 0;
  int64_t last_time_ns_ = std::numeric_limits<int64_t>::min();
  double min_ = 0;
  double max_ = 0;
  uint64_t passes_ = 0;
  Histogram histogram_;  // trends only
  int64_t first_seen_ns_ = std::numeric_limits<int64_t>::max();
};

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_AGGREGATE_H_
