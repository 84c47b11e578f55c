#include "controller/dashboard/history.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace barrage::dashboard {
namespace {

// Distinct "method status" series kept per point; the rest are summed
// under "other" (a script calling thousands of methods would otherwise
// grow every point without bound).
constexpr size_t kMaxRequestSeries = 24;

double CounterSum(const metrics::MetricStore& store, const char* name) {
  std::optional<metrics::Aggregate> a = store.Query(name);
  return a ? a->sum() : 0;
}

// counts[k] of `span` at absolute bucket index i, 0 outside.
uint64_t At(const metrics::Histogram::BucketSpan& span, int64_t i) {
  const int64_t k = i - span.offset;
  return k >= 0 && k < static_cast<int64_t>(span.counts.size()) ? span.counts[k] : 0;
}

// now - before over the union of both spans' indices (trimmed).
std::pair<int32_t, std::vector<uint64_t>> Subtract(const metrics::Histogram::BucketSpan& now,
                                                   const metrics::Histogram::BucketSpan& before) {
  if (now.counts.empty()) return {0, {}};
  const int64_t lo = now.offset;
  const int64_t hi = now.offset + static_cast<int64_t>(now.counts.size());
  std::vector<uint64_t> out;
  out.reserve(now.counts.size());
  for (int64_t i = lo; i < hi; ++i) {
    const uint64_t a = At(now, i), b = At(before, i);
    out.push_back(a > b ? a - b : 0);
  }
  return {static_cast<int32_t>(lo), std::move(out)};
}

// The lowest (first) or highest non-zero index of counts, as a value.
std::optional<double> Edge(int32_t offset, const std::vector<uint64_t>& counts, bool lowest, bool negative) {
  if (lowest) {
    for (size_t k = 0; k < counts.size(); ++k) {
      if (counts[k]) return (negative ? -1 : 1) * metrics::Histogram::BucketValue(offset + static_cast<int32_t>(k));
    }
  } else {
    for (size_t k = counts.size(); k-- > 0;) {
      if (counts[k]) return (negative ? -1 : 1) * metrics::Histogram::BucketValue(offset + static_cast<int32_t>(k));
    }
  }
  return std::nullopt;
}

nlohmann::json Num(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

Totals ReadTotals(const metrics::MetricStore& store) {
  Totals t;
  store.ForEachSeries("grpc_req_duration", [&](const std::string&, const metrics::TagSet& tags, const metrics::Aggregate& agg) {
    auto method = tags.find("method");
    auto status = tags.find("status");
    const std::string key = absl::StrCat(method != tags.end() ? method->second : "", " ",
                                         status != tags.end() ? status->second : "");
    t.requests_by[key] += agg.count();
    t.requests += agg.count();
    if (status != tags.end() && status->second != "0") t.failed += agg.count();
    t.duration.Merge(agg.histogram());
  });
  // k6's grpc_req_failed where a build has it: its passes are the failures.
  if (const metrics::MetricDef* def = store.Find("grpc_req_failed"); def && def->type == metrics::MetricType::kRate) {
    std::optional<metrics::Aggregate> a = store.Query("grpc_req_failed");
    t.failed = a ? a->passes() : 0;
  }
  t.iterations = CounterSum(store, "iterations");
  t.dropped = CounterSum(store, "dropped_iterations");
  t.msgs_sent = CounterSum(store, "grpc_streams_msgs_sent");
  t.msgs_received = CounterSum(store, "grpc_streams_msgs_received");
  t.data_sent = CounterSum(store, "data_sent");
  t.data_received = CounterSum(store, "data_received");
  return t;
}

metrics::Histogram HistogramDifference(const metrics::Histogram& now, const metrics::Histogram& before) {
  if (before.count() == 0) return now;
  if (now.count() <= before.count()) return metrics::Histogram();
  auto [pos_off, pos] = Subtract(now.positive_buckets(), before.positive_buckets());
  auto [neg_off, neg] = Subtract(now.negative_buckets(), before.negative_buckets());
  const uint64_t zero = now.zero_count() > before.zero_count() ? now.zero_count() - before.zero_count() : 0;
  // The interval's own min and max at bucket resolution (the merged ones
  // are the whole run's), clamped to the run's exact ones.
  std::optional<double> lo = Edge(neg_off, neg, /*lowest=*/false, true);  // the largest magnitude
  if (!lo && zero) lo = 0.0;
  if (!lo) lo = Edge(pos_off, pos, /*lowest=*/true, false);
  std::optional<double> hi = Edge(pos_off, pos, /*lowest=*/false, false);
  if (!hi && zero) hi = 0.0;
  if (!hi) hi = Edge(neg_off, neg, /*lowest=*/true, true);
  const double mn = std::clamp(lo.value_or(now.min()), now.min(), now.max());
  const double mx = std::clamp(hi.value_or(now.max()), now.min(), now.max());
  return metrics::Histogram::FromParts({pos_off, pos}, {neg_off, neg}, zero, now.count() - before.count(),
                                       now.sum() - before.sum(), mn, mx);
}

void History::Add(Totals totals, const Gauges& gauges, absl::Time now) {
  Point p;
  p.t = absl::ToDoubleSeconds(now - absl::UnixEpoch());
  const absl::Time from = last_time_ == absl::InfinitePast() ? now : last_time_;
  p.dt = std::max(absl::ToDoubleSeconds(now - from), 1e-3);
  const double per = 1.0 / p.dt;
  const uint64_t requests = totals.requests > last_.requests ? totals.requests - last_.requests : 0;
  p.rps = static_cast<double>(requests) * per;
  size_t kept = 0;
  for (const auto& [key, n] : totals.requests_by) {
    auto it = last_.requests_by.find(key);
    const uint64_t before = it == last_.requests_by.end() ? 0 : it->second;
    const double rate = static_cast<double>(n > before ? n - before : 0) * per;
    if (kept < kMaxRequestSeries) {
      p.rps_by[key] = rate;
      ++kept;
    } else {
      p.rps_by["other"] += rate;
    }
  }
  if (requests > 0) {
    const metrics::Histogram h = HistogramDifference(totals.duration, last_.duration);
    p.p50 = h.Quantile(0.5);
    p.p90 = h.Quantile(0.9);
    p.p95 = h.Quantile(0.95);
    p.p99 = h.Quantile(0.99);
    const uint64_t failed = totals.failed > last_.failed ? totals.failed - last_.failed : 0;
    p.error_share = static_cast<double>(failed) / static_cast<double>(requests);
  }
  p.vus = static_cast<double>(gauges.vus);
  p.vus_max = static_cast<double>(gauges.vus_max);
  p.agents = gauges.agents;
  p.iterations = std::max(0.0, totals.iterations - last_.iterations) * per;
  p.dropped = std::max(0.0, totals.dropped - last_.dropped) * per;
  p.msgs_sent = std::max(0.0, totals.msgs_sent - last_.msgs_sent) * per;
  p.msgs_received = std::max(0.0, totals.msgs_received - last_.msgs_received) * per;
  p.data_sent = std::max(0.0, totals.data_sent - last_.data_sent) * per;
  p.data_received = std::max(0.0, totals.data_received - last_.data_received) * per;
  points_.push_back(std::move(p));
  ++appended_;
  last_ = std::move(totals);
  last_time_ = now;
  if (points_.size() > max_points_) Downsample();
}

namespace {

// Two neighbouring points as one over both intervals.
Point MergePoints(const Point& a, const Point& b) {
  Point m = b;  // gauges: the later value
  m.dt = a.dt + b.dt;
  auto w = [&](double x, double y) { return (x * a.dt + y * b.dt) / m.dt; };
  m.rps = w(a.rps, b.rps);
  m.rps_by.clear();
  for (const auto& [k, v] : a.rps_by) m.rps_by[k] += v * a.dt / m.dt;
  for (const auto& [k, v] : b.rps_by) m.rps_by[k] += v * b.dt / m.dt;
  auto larger = [](const std::optional<double>& x, const std::optional<double>& y) -> std::optional<double> {
    if (!x) return y;
    if (!y) return x;
    return std::max(*x, *y);
  };
  m.p50 = larger(a.p50, b.p50);
  m.p90 = larger(a.p90, b.p90);
  m.p95 = larger(a.p95, b.p95);
  m.p99 = larger(a.p99, b.p99);
  const double ra = a.rps * a.dt, rb = b.rps * b.dt;
  if (ra + rb > 0) m.error_share = (a.error_share.value_or(0) * ra + b.error_share.value_or(0) * rb) / (ra + rb);
  m.iterations = w(a.iterations, b.iterations);
  m.dropped = w(a.dropped, b.dropped);
  m.msgs_sent = w(a.msgs_sent, b.msgs_sent);
  m.msgs_received = w(a.msgs_received, b.msgs_received);
  m.data_sent = w(a.data_sent, b.data_sent);
  m.data_received = w(a.data_received, b.data_received);
  return m;
}

}  // namespace

void History::MergeLast() {
  if (points_.size() < 2) return;
  Point b = std::move(points_.back());
  points_.pop_back();
  points_.back() = MergePoints(points_.back(), b);
  ++generation_;
}

void History::Downsample() {
  std::deque<Point> merged;
  for (size_t i = 0; i + 1 < points_.size(); i += 2) merged.push_back(MergePoints(points_[i], points_[i + 1]));
  if (points_.size() % 2) merged.push_back(points_.back());
  points_ = std::move(merged);
  ++generation_;
}

nlohmann::json PointToJson(const Point& p) {
  nlohmann::json by = nlohmann::json::object();
  for (const auto& [k, v] : p.rps_by) by[k] = Num(v);
  return {{"t", p.t},
          {"dt", p.dt},
          {"rps", Num(p.rps)},
          {"by", std::move(by)},
          {"p50", Num(p.p50)},
          {"p90", Num(p.p90)},
          {"p95", Num(p.p95)},
          {"p99", Num(p.p99)},
          {"err", Num(p.error_share)},
          {"vus", p.vus},
          {"vus_max", p.vus_max},
          {"agents", p.agents},
          {"iters", Num(p.iterations)},
          {"dropped", Num(p.dropped)},
          {"msgs_sent", Num(p.msgs_sent)},
          {"msgs_recv", Num(p.msgs_received)},
          {"data_sent", Num(p.data_sent)},
          {"data_recv", Num(p.data_received)}};
}

nlohmann::json History::PointsJson(size_t from) const {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = from; i < points_.size(); ++i) out.push_back(PointToJson(points_[i]));
  return out;
}

nlohmann::json History::TotalsJson() const {
  const Totals& t = last_;
  const metrics::Histogram& h = t.duration;
  return {{"requests", t.requests},
          {"failed", t.failed},
          {"iterations", t.iterations},
          {"dropped", t.dropped},
          {"msgs_sent", t.msgs_sent},
          {"msgs_recv", t.msgs_received},
          {"data_sent", t.data_sent},
          {"data_recv", t.data_received},
          {"duration",
           h.count() == 0 ? nlohmann::json(nullptr)
                          : nlohmann::json{{"avg", h.Mean()},
                                           {"min", h.min()},
                                           {"p50", h.Quantile(0.5)},
                                           {"p90", h.Quantile(0.9)},
                                           {"p95", h.Quantile(0.95)},
                                           {"p99", h.Quantile(0.99)},
                                           {"max", h.max()}}}};
}

}  // namespace barrage::dashboard
