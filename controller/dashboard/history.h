// The dashboard's time series: every period the controller's merged
// metrics are read once (under the coordinator's lock, briefly) into
// running totals, and the difference from the previous reading becomes a
// point: requests per second by method and status, latency quantiles of
// the requests in that interval (the difference of two merged histograms,
// so as exact as the histogram), error share, iterations, drops, stream
// messages and data per second, and the VUs and agents at that moment.
//
// Bounded: past max_points, neighbouring points are merged in pairs
// (rates weighted by their intervals, gauges the later value, quantiles
// the larger of the two: a pair's exact quantile is not recoverable from
// two quantiles, and the larger one hides no spike), so a long run keeps
// its whole span at a coarser step. Not thread-safe: the owner locks.
#ifndef BARRAGE_CONTROLLER_DASHBOARD_HISTORY_H_
#define BARRAGE_CONTROLLER_DASHBOARD_HISTORY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/metrics/histogram.h"
#include "common/metrics/metric_store.h"
#include "nlohmann/json.hpp"

namespace barrage::dashboard {

// What the metric store says so far, summed over the whole run.
struct Totals {
  std::map<std::string, uint64_t> requests_by;  // "method status" -> requests
  uint64_t requests = 0;
  uint64_t failed = 0;  // grpc_req_failed's passes where it exists, else non-OK statuses
  metrics::Histogram duration;  // grpc_req_duration, all series merged (ms)
  double iterations = 0;
  double dropped = 0;
  double msgs_sent = 0;
  double msgs_received = 0;
  double data_sent = 0;
  double data_received = 0;
};
Totals ReadTotals(const metrics::MetricStore& store);

// The moment's gauges (not in the store as series of their own).
struct Gauges {
  int64_t vus = 0;
  int64_t vus_max = 0;
  int agents = 0;
};

struct Point {
  double t = 0;   // Unix seconds at the end of the interval
  double dt = 0;  // the interval's length, seconds
  double rps = 0;
  std::map<std::string, double> rps_by;  // "method status" -> requests per second
  std::optional<double> p50, p90, p95, p99;  // ms; none when the interval had no request
  std::optional<double> error_share;         // 0..1; none when the interval had no request
  double vus = 0, vus_max = 0, agents = 0;
  double iterations = 0, dropped = 0;            // per second
  double msgs_sent = 0, msgs_received = 0;       // per second
  double data_sent = 0, data_received = 0;       // bytes per second
};
nlohmann::json PointToJson(const Point& p);

// The histogram of the samples in `now` that were not in `before` (before's
// samples are a subset of now's: the store only grows). min and max are
// now's: an interval's own are not recoverable, and quantiles clamp to them.
metrics::Histogram HistogramDifference(const metrics::Histogram& now, const metrics::Histogram& before);

class History {
 public:
  explicit History(size_t max_points = 720) : max_points_(max_points < 2 ? 2 : max_points) {}

  // A new point from the totals now (read with ReadTotals) against the last
  // ones. The first call measures from `start`.
  void Add(Totals totals, const Gauges& gauges, absl::Time now);
  void SetStart(absl::Time start) { last_time_ = start; }
  // Merges the last point into the one before (the final reading, moments
  // after a regular one, would otherwise be a spike over a tiny interval).
  void MergeLast();

  const std::deque<Point>& points() const { return points_; }
  const Totals& totals() const { return last_; }
  // Bumped each time the points were merged (indices changed).
  uint64_t generation() const { return generation_; }
  // Points appended since the start (never decreases; for clients that
  // already hold the first ones).
  uint64_t appended() const { return appended_; }

  nlohmann::json PointsJson(size_t from = 0) const;
  nlohmann::json TotalsJson() const;

 private:
  void Downsample();

  size_t max_points_;
  std::deque<Point> points_;
  Totals last_;
  absl::Time last_time_ = absl::InfinitePast();
  uint64_t generation_ = 0;
  uint64_t appended_ = 0;
};

}  // namespace barrage::dashboard

#endif  // BARRAGE_CONTROLLER_DASHBOARD_HISTORY_H_
