// The wire form of a MetricStore (barrage/v1/metrics.proto's MetricsDelta):
// what an agent sends the controller each interval, and how the controller
// takes it in.
//
// The form carries every field of each Aggregate, histograms as offset plus
// dense counts, so StoreToProto then MergeFromProto into an empty store
// gives series equal (Aggregate's operator==) to the originals, and merging
// the deltas of several agents gives what one agent over all their samples
// would have. That is the promise of DESIGN.md's Metrics section, kept
// across the network.
//
// A delta comes from a peer, so MergeFromProto trusts none of it: it
// checks the whole delta before it changes anything, because a half-merged
// delta would count some samples and lose others. Not thread-safe beyond
// MetricStore's own rules: the caller owns `into`.
#ifndef BARRAGE_COMMON_METRICS_WIRE_H_
#define BARRAGE_COMMON_METRICS_WIRE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "barrage/v1/metrics.pb.h"
#include "common/metrics/metric_store.h"

namespace barrage::metrics {

struct WireLimits {
  // Series in one delta, and in the receiving store after the merge: tags
  // with unbounded values (a request id) would otherwise grow the
  // controller's memory without end.
  size_t max_series = 100000;
  // Buckets sent for one histogram, positive and negative together. 65536
  // buckets span magnitudes over a ratio of 10^284; a latency histogram
  // from 0.1 ms to 60 s needs about 1300.
  size_t max_buckets_per_histogram = 1 << 16;
};

// Every definition and series of `store` into `out` (cleared first).
// Series come in no particular order; histograms only for trends.
void StoreToProto(const MetricStore& store, barrage::v1::MetricsDelta* out);

// Defines the metrics of `in` and merges its series into `into`. A series
// may name a metric defined in `in` or already in `into`; a series that
// appears twice in `in` is merged twice (both count).
//
// Everything is checked before anything is merged; on failure `into` is
// unchanged and the status is kInvalidArgument, its message
// "<where>: metric '<name>' {<tags>}: <what is wrong>" (no "<where>: "
// when where is empty). Checked: a definition without a name or with an
// unknown type or value type; one that disagrees with `into` or with
// another in `in`; a series of an undefined metric; NaN in min, max or
// last (real samples never give one), and in sum unless samples of both
// signs (+inf and -inf) could; min > max, last outside [min, max],
// last_time_ns < first_seen_ns; passes > count, or passes on a non-rate; a
// sum on a gauge or rate, or without samples; a histogram on a non-trend;
// bucket spans beyond Histogram::MinBucket()/MaxBucket(); bucket counts
// plus zero_count that do not add up to count, or that disagree with the
// signs of min and max; and the limits.
[[nodiscard]] absl::Status MergeFromProto(const barrage::v1::MetricsDelta& in, MetricStore& into,
                                          const WireLimits& limits, const std::string& where);

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_WIRE_H_
