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

class MetricStore;

// One series (a metric and an encoded tag set) as a call site keeps it: the
// first sample looks the series up, later ones go straight to its aggregate
// and hash neither the name nor the tags (issue 14: the tag strings were
// 3-8 % of a unary call's CPU). It looks the series up again after the
// store was cleared (each interval's drain) or when given another store.
struct SeriesRef {
  SeriesRef() = default;
  SeriesRef(std::string metric_name, std::string encoded) : metric(std::move(metric_name)), encoded_tags(std::move(encoded)) {}
  std::string metric;
  std::string encoded_tags;  // EncodeTagSet

  // MetricStore::Resolve's cache: valid while store's generation is this one.
  const MetricStore* store = nullptr;
  uint64_t generation = 0;
  Aggregate* agg = nullptr;
};

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

  // The aggregate of ref's series, created if needed (the metric must be
  // defined: BARRAGE_CHECK); cached in ref until Clear().
  Aggregate& Resolve(SeriesRef& ref) {
    if (ref.store != this || ref.generation != generation_) ResolveSlow(ref);
    return *ref.agg;
  }
  // The aggregate of a series, created if needed (the metric must be
  // defined: BARRAGE_CHECK).
  Aggregate& SeriesAggregate(const std::string& metric, const std::string& encoded_tags) {
    return FindOrCreate(metric, encoded_tags).agg;
  }
  // Same as AddEncoded(ref.metric, ref.encoded_tags, ...).
  void Add(SeriesRef& ref, double value, int64_t time_ns) { Resolve(ref).Add(value, time_ns); }

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
  void Clear() {  // keeps the definitions; SeriesRefs look their series up again
    series_.clear();
    tag_bytes_ = 0;
    generation_ = NextGeneration();
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
  // Unique over the process, so that a SeriesRef resolved in a store that
  // is gone never matches a new store at the same address.
  static uint64_t NextGeneration();
  void ResolveSlow(SeriesRef& ref);
  Series& FindOrCreate(const std::string& metric, const std::string& encoded_tags);

  uint64_t generation_ = NextGeneration();
  std::map<std::string, MetricDef> defs_;
  // Nodes of unordered_map do not move on rehash, so a SeriesRef's
  // aggregate pointer stays valid until Clear().
  // metric -> encoded tag set -> series
  std::unordered_map<std::string, std::unordered_map<std::string, Series>> series_;
  size_t tag_bytes_ = 0;
};

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_METRIC_STORE_H_
