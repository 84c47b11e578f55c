#include "common/metrics/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace barrage::metrics {
namespace {

// The gauge order: later time wins; on a tie the larger value, and +0 over
// -0, so that whichever of two samples is kept never depends on the order
// they arrive or merge in.
bool Supersedes(int64_t time_a, double value_a, int64_t time_b, double value_b) {
  if (time_a != time_b) return time_a > time_b;
  if (value_a != value_b) return value_a > value_b;
  return !std::signbit(value_a) && std::signbit(value_b);
}

}  // namespace

void Aggregate::Add(double value, int64_t time_ns) {
  if (std::isnan(value)) return;
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  first_seen_ns_ = std::min(first_seen_ns_, time_ns);
  if (count_ == 1 || Supersedes(time_ns, value, last_time_ns_, last_)) {
    last_ = value;
    last_time_ns_ = time_ns;
  }
  switch (type_) {
    case MetricType::kCounter:
      sum_ += value;
      break;
    case MetricType::kGauge:
      break;
    case MetricType::kRate:
      if (value != 0) ++passes_;
      break;
    case MetricType::kTrend:
      sum_ += value;
      histogram_.Add(value);
      break;
  }
}

void Aggregate::Merge(const Aggregate& other) {
  if (other.type_ != type_) {
    // An invariant, not user input: the store keys series by a metric whose
    // type is fixed at definition.
    std::fprintf(stderr, "BARRAGE_CHECK failed: Aggregate::Merge of %s into %s\n",
                 std::string(MetricTypeName(other.type_)).c_str(),
                 std::string(MetricTypeName(type_)).c_str());
    std::abort();
  }
  if (other.count_ == 0) return;
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
    last_ = other.last_;
    last_time_ns_ = other.last_time_ns_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    if (Supersedes(other.last_time_ns_, other.last_, last_time_ns_, last_)) {
      last_ = other.last_;
      last_time_ns_ = other.last_time_ns_;
    }
  }
  count_ += other.count_;
  sum_ += other.sum_;
  passes_ += other.passes_;
  first_seen_ns_ = std::min(first_seen_ns_, other.first_seen_ns_);
  if (type_ == MetricType::kTrend) histogram_.Merge(other.histogram_);
}

Aggregate Aggregate::FromParts(MetricType type, uint64_t count, double sum, double last,
                               int64_t last_time_ns, double min, double max, uint64_t passes,
                               Histogram histogram, int64_t first_seen_ns) {
  Aggregate agg(type);
  agg.count_ = count;
  agg.sum_ = sum;
  agg.last_ = last;
  agg.last_time_ns_ = last_time_ns;
  agg.min_ = min;
  agg.max_ = max;
  agg.passes_ = passes;
  agg.histogram_ = std::move(histogram);
  agg.first_seen_ns_ = first_seen_ns;
  return agg;
}

}  // namespace barrage::metrics
