// Metric definitions plus one Aggregate per (metric, tag set): what an
// agent's interval aggregator fills and what the controller merges into.
// Not thread-safe: each owner serialises access.
#ifndef BARRAGE_COMMON_METRICS_METRIC_STORE_H_
#define BARRAGE_COMMON_METRICS_METRIC_STORE_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "common/metrics/aggregate.h"
#include "common/metrics/metric.h"

namespace barrage::metrics {

class MetricStore {
 public:
  // Defining a name again with the same type and contains is fine (returns
  // ok); with another one it fails with kAlreadyExists:
  // "metric '<n>' already exists but with type <t>, contains <c>".
  absl::Status Define(const MetricDef& def);
  const MetricDef* Find(const std::string& name) const;
  const std::map<std::string, MetricDef>& defs() const { return defs_; }

  // The metric must be defined (BARRAGE_CHECK).
  void Add(const std::string& metric, const TagSet& tags, double value, int64_t time_ns);
  // Same, with the tag set already encoded (EncodeTagSet): the hot path
  // caches encoded keys.
  void AddEncoded(const std::string& metric, const std::string& encoded_tags, double value,
                  int64_t time_ns);

  // Adds other's definitions (conflicts: kAlreadyExists, nothing merged)
  // and merges its series into this one.
  absl::Status Merge(const MetricStore& other);
  // Merges an aggregate built elsewhere (a peer's delta, common/metrics/
  // wire.h) into one series, creating it if needed. The metric must be
  // defined with agg's type (BARRAGE_CHECK): the caller validates first.
  void MergeEncoded(const std::string& metric, const std::string& encoded_tags,
                    const Aggregate& agg);
  bool HasSeries(const std::string& metric, const std::string& encoded_tags) const;
  // The series' aggregate, or nullptr when the store has no such series.
  const Aggregate* FindSeries(const std::string& metric, const std::string& encoded_tags) const;

  // The merge of every series of `metric` whose tags contain all of
  // `filter` (a sub-metric such as grpc_req_duration{method:SayHello});
  // nullopt when no series matches or the metric is unknown.
  std::optional<Aggregate> Query(const std::string& metric, const TagSet& filter = {}) const;

  // Visits each series of a metric (or of all metrics when metric is
  // empty), in no particular order.
  void ForEachSeries(const std::string& metric,
                     const std::function<void(const std::string& metric, const TagSet& tags,
                                              const Aggregate& agg)>& fn) const;

  bool empty() const { return series_.empty(); }
  void Clear() {  // keeps the definitions
    series_.clear();
    tag_bytes_ = 0;
  }
  size_t series_count() const;
  // The bytes of every series' encoded tag set together: what bounds the
  // store's memory beside the series count (common/metrics/wire.h).
  size_t tag_bytes() const { return tag_bytes_; }

 private:
  struct Series {
    TagSet tags;
    Aggregate agg;
  };
  std::map<std::string, MetricDef> defs_;
  // metric -> encoded tag set -> series
  std::unordered_map<std::string, std::unordered_map<std::string, Series>> series_;
  size_t tag_bytes_ = 0;
};

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_METRIC_STORE_H_
