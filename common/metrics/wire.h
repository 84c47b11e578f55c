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
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "barrage/v1/metrics.pb.h"
#include "common/metrics/metric_store.h"

namespace barrage::metrics {

struct WireLimits {
  // Series in one delta, and in the receiving store after the merge: tags
  // with unbounded values (a request id) would otherwise grow the
  // controller's memory without end. Past it, new series are dropped (and
  // reported), never samples of series the store has.
  size_t max_series = 100000;
  // Buckets sent for one histogram, positive and negative together. 65536
  // buckets span magnitudes over a ratio of 10^284; a latency histogram
  // from 0.1 ms to 60 s needs about 1300.
  size_t max_buckets_per_histogram = 1 << 16;
  // Bytes of one series' tag set (EncodeTagSet's form), and of all the tag
  // sets of the receiving store. A tag set over the first, or one that
  // would pass the second, is dropped like a series beyond max_series: 30
  // MB tag values grew a controller to 1.4 GB before these limits.
  size_t max_tag_bytes = 64 << 10;
  size_t max_total_tag_bytes = 256 << 20;
  // Metric definitions in the receiving store (k6 scripts define tens).
  size_t max_metrics = 10000;
  // Samples of one series in one delta, and in the store: far beyond any
  // real interval or run (2^40 samples a second; 2^62 in all), and far
  // from the 2^64 at which an unsigned count wraps to a small one.
  uint64_t max_delta_count = uint64_t{1} << 40;
  uint64_t max_count = uint64_t{1} << 62;
};

// What a merge left out: new series beyond the limits, and what the sender
// itself left out (MetricsDelta's dropped_* fields).
struct MergeReport {
  uint64_t dropped_series = 0;
  uint64_t dropped_samples = 0;
  // The first series dropped, "metric '<name>' {<tags>}" cut to about 120
  // bytes, and which limit: for a warning that names them.
  std::string first_dropped;
  std::string why;  // "the limit of 100000 series", "... tag bytes per series", "... tag bytes in all series"
};

// Every definition and series of `store` into `out` (cleared first).
// Series come in no particular order; histograms only for trends.
void StoreToProto(const MetricStore& store, barrage::v1::MetricsDelta* out);

// The same as messages of at most `max_message_bytes` serialized (a series
// is about its tag bytes plus 100 bytes, and histograms within the default
// bucket limit stay under 1 MB, so any limit from 2 MB up holds): gRPC
// refuses messages over its limit, and one interval of unique tags can be
// larger than any limit. Each message carries the definitions of the
// metrics its series name, and the first one every definition, so each
// merges on its own and an empty store still sends its definitions. Series
// whose tag set is over `max_tag_bytes` are left out, as the receiver would
// drop them, and counted in the first message's dropped_* fields.
std::vector<barrage::v1::MetricsDelta> StoreToProtos(const MetricStore& store, size_t max_message_bytes,
                                                     size_t max_tag_bytes);

// Defines the metrics of `in` and merges its series into `into`. A series
// may name a metric defined in `in` or already in `into`; a series that
// appears twice in `in` is merged twice (both count).
//
// Everything is checked before anything is merged; on failure `into` is
// unchanged and the status is kInvalidArgument, its message
// "<where>: metric '<name>' {<tags>}: <what is wrong>" (no "<where>: "
// when where is empty). Checked: a definition without a name, with a name
// over 128 bytes or holding a control character, or with an unknown type
// or value type; one that disagrees with `into` or with another in `in`; a
// new metric beyond max_metrics; a series of an undefined metric; NaN in
// min, max or last (real samples never give one), and in sum unless
// samples of both signs (+inf and -inf) could; min > max, last outside
// [min, max], last_time_ns < first_seen_ns; a sum outside count x [min,
// max] (with room for rounding); a count over max_delta_count, or one that
// would take the stored series past max_count; passes > count, or passes
// on a non-rate; a sum on a gauge or rate, or without samples; a histogram
// on a non-trend; bucket spans beyond Histogram::MinBucket()/MaxBucket();
// bucket counts plus zero_count that do not add up to count, or that
// disagree with the signs of min and max; more series in one delta than
// max_series; dropped_* counts over max_delta_count.
//
// New series beyond max_series or the tag byte limits are not an error:
// they are left out, and counted in `report` (when given) with what the
// sender reports it dropped; everything else merges.
[[nodiscard]] absl::Status MergeFromProto(const barrage::v1::MetricsDelta& in, MetricStore& into,
                                          const WireLimits& limits, const std::string& where,
                                          MergeReport* report = nullptr);

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_WIRE_H_
