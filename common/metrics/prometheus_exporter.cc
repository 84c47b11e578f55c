#include "common/metrics/prometheus_exporter.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <mutex>
#include <regex>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/metrics/aggregate.h"

namespace barrage::metrics {
namespace {

// Histogram bucket bounds in the metric's base unit (seconds for time):
// latencies from 100 µs to a minute, as dashboards usually want them.
constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                              0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
constexpr double kQuantiles[] = {0.5, 0.9, 0.95, 0.99};

std::string Unit(const MetricDef& def) {
  if (def.contains == ValueType::kTime) return "_seconds";
  if (def.contains == ValueType::kData) return "_bytes";
  return "";
}

// k6 keeps time in ms; Prometheus wants seconds.
double Scale(const MetricDef& def) { return def.contains == ValueType::kTime ? 1e-3 : 1.0; }

// For each bound (ascending, > 0, in the histogram's own unit) the highest
// positive bucket whose representative value is within it. Computed once
// per render: BucketValue() is a pow(), and calling it per bucket per
// bound per series was half of a scrape's CPU (perf, 10,000 series).
std::vector<int32_t> BucketLimits(double scale) {
  std::vector<int32_t> limits;
  for (double bound : kBounds) {
    const double b = bound / scale;
    int32_t i = Histogram::Bucket(b);
    while (Histogram::BucketValue(i) > b) --i;
    while (Histogram::BucketValue(i + 1) <= b) ++i;
    limits.push_back(i);
  }
  return limits;
}

// Samples <= each bound, at bucket resolution (a bucket counts when its
// representative value is within the bound), in one pass over the
// buckets. Every negative and zero sample is below the (positive) bounds.
std::vector<uint64_t> CumulativeCounts(const Histogram& h, const std::vector<int32_t>& limits) {
  uint64_t cumulative = h.zero_count();
  for (uint64_t c : h.negative_buckets().counts) cumulative += c;
  std::vector<uint64_t> out;
  out.reserve(limits.size());
  const Histogram::BucketSpan pos = h.positive_buckets();
  size_t j = 0;
  for (size_t k = 0; k < pos.counts.size(); ++k) {
    const int32_t index = pos.offset + static_cast<int32_t>(k);
    while (j < limits.size() && index > limits[j]) {
      out.push_back(cumulative);
      ++j;
    }
    cumulative += pos.counts[k];
  }
  while (out.size() < limits.size()) out.push_back(cumulative);
  return out;
}

}  // namespace

const std::vector<std::string>& DefaultExportedLabels() {
  static const std::vector<std::string> labels = {"method", "status", "scenario", "group", "name", "check"};
  return labels;
}

std::string PrometheusName(const MetricDef& def) {
  const std::string stem = absl::StrCat("barrage_", def.name);
  switch (def.type) {
    case MetricType::kCounter:
      return absl::StrCat(stem, Unit(def), "_total");
    case MetricType::kRate:
      return absl::StrCat(stem, "_total");
    default:
      return absl::StrCat(stem, Unit(def));
  }
}

class PrometheusExporter::Collector : public prometheus::Collectable {
 public:
  Collector(const ExporterConfig& config, WithMetrics with_metrics, StateFn state)
      : config_(config), with_metrics_(std::move(with_metrics)), state_(std::move(state)) {
    labels_.insert(DefaultExportedLabels().begin(), DefaultExportedLabels().end());
    labels_.insert(config.extra_labels.begin(), config.extra_labels.end());
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    // metric -> allowed labels -> merged aggregate. Built under the owner's
    // lock, rendered after it.
    std::map<std::string, MetricDef> defs;
    std::map<std::string, std::map<std::vector<prometheus::ClientMetric::Label>, Aggregate>> merged;
    size_t series = 0;
    std::set<std::string> over_limit;
    with_metrics_([&](MetricStore& store) {
      defs = store.defs();
      store.ForEachSeries("", [&](const std::string& metric, const TagSet& tags, const Aggregate& agg) {
        std::vector<prometheus::ClientMetric::Label> labels;
        for (const auto& [k, v] : tags) {
          if (labels_.count(k) && !v.empty()) labels.push_back({k, v});
        }
        auto& by_labels = merged[metric];
        auto it = by_labels.find(labels);
        if (it != by_labels.end()) {
          it->second.Merge(agg);
          return;
        }
        if (series >= config_.max_series) {
          over_limit.insert(metric);
          return;
        }
        ++series;
        by_labels.emplace(std::move(labels), agg);
      });
    });
    std::vector<prometheus::MetricFamily> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::string& m : over_limit) {
        if (warned_.insert(m).second) {
          barrage::Log(Severity::kWarning,
                       absl::StrCat("prometheus: metric '", m, "' has more label combinations than the limit of ",
                                    config_.max_series, " series; the rest are not exported"));
        }
      }
      if (!over_limit.empty()) dropped_scrapes_++;
      prometheus::MetricFamily dropped{"barrage_exporter_series_dropped_scrapes_total",
                                       "scrapes at which some series were over the exporter's limit",
                                       prometheus::MetricType::Counter,
                                       {}};
      prometheus::ClientMetric c;
      c.counter.value = static_cast<double>(dropped_scrapes_);
      dropped.metric.push_back(c);
      out.push_back(std::move(dropped));
    }
    for (const auto& [metric, by_labels] : merged) {
      auto def_it = defs.find(metric);
      if (def_it == defs.end()) continue;
      const MetricDef& def = def_it->second;
      const double scale = Scale(def);
      const std::string help = absl::StrCat("k6 metric ", def.name, " (", std::string(MetricTypeName(def.type)), ")");
      switch (def.type) {
        case MetricType::kCounter: {
          prometheus::MetricFamily f{PrometheusName(def), help, prometheus::MetricType::Counter, {}};
          for (const auto& [labels, agg] : by_labels) {
            prometheus::ClientMetric c;
            c.label = labels;
            c.counter.value = agg.sum() * scale;
            f.metric.push_back(std::move(c));
          }
          out.push_back(std::move(f));
          break;
        }
        case MetricType::kGauge: {
          prometheus::MetricFamily f{PrometheusName(def), help, prometheus::MetricType::Gauge, {}};
          for (const auto& [labels, agg] : by_labels) {
            prometheus::ClientMetric c;
            c.label = labels;
            c.gauge.value = agg.last() * scale;
            f.metric.push_back(std::move(c));
          }
          out.push_back(std::move(f));
          break;
        }
        case MetricType::kRate: {
          prometheus::MetricFamily total{PrometheusName(def), absl::StrCat(help, ": samples"),
                                         prometheus::MetricType::Counter, {}};
          prometheus::MetricFamily passes{absl::StrCat("barrage_", def.name, "_passes_total"),
                                          absl::StrCat(help, ": non-zero samples"), prometheus::MetricType::Counter, {}};
          for (const auto& [labels, agg] : by_labels) {
            prometheus::ClientMetric c;
            c.label = labels;
            c.counter.value = static_cast<double>(agg.count());
            total.metric.push_back(c);
            c.counter.value = static_cast<double>(agg.passes());
            passes.metric.push_back(std::move(c));
          }
          out.push_back(std::move(total));
          out.push_back(std::move(passes));
          break;
        }
        case MetricType::kTrend: {
          prometheus::MetricFamily hist{PrometheusName(def), help, prometheus::MetricType::Histogram, {}};
          prometheus::MetricFamily quant{absl::StrCat("barrage_", def.name, "_quantile", Unit(def)),
                                         absl::StrCat(help, ": quantiles of the merged histogram"),
                                         prometheus::MetricType::Gauge, {}};
          const std::vector<int32_t> limits = BucketLimits(scale);
          for (const auto& [labels, agg] : by_labels) {
            const Histogram& h = agg.histogram();
            prometheus::ClientMetric c;
            c.label = labels;
            c.histogram.sample_count = h.count();
            c.histogram.sample_sum = h.sum() * scale;
            const std::vector<uint64_t> counts = CumulativeCounts(h, limits);
            for (size_t b = 0; b < counts.size(); ++b) c.histogram.bucket.push_back({counts[b], kBounds[b]});
            c.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
            hist.metric.push_back(std::move(c));
            for (double q : kQuantiles) {
              prometheus::ClientMetric g;
              g.label = labels;
              g.label.push_back({"quantile", absl::StrCat(q)});
              g.gauge.value = h.Quantile(q) * scale;
              quant.metric.push_back(std::move(g));
            }
          }
          out.push_back(std::move(hist));
          out.push_back(std::move(quant));
          break;
        }
      }
    }
    const RunState state = state_();
    prometheus::MetricFamily agents{"barrage_agents_connected", "agents in the run", prometheus::MetricType::Gauge, {}};
    prometheus::ClientMetric a;
    a.gauge.value = state.agents_connected;
    agents.metric.push_back(a);
    out.push_back(std::move(agents));
    prometheus::MetricFamily phase{"barrage_run_phase", "1 for the phase the run is in", prometheus::MetricType::Gauge, {}};
    for (const char* p : {"init", "setup", "running", "teardown", "done"}) {
      prometheus::ClientMetric g;
      g.label.push_back({"phase", p});
      g.gauge.value = state.phase == p ? 1 : 0;
      phase.metric.push_back(std::move(g));
    }
    out.push_back(std::move(phase));
    prometheus::MetricFamily passing{"barrage_thresholds_passing", "1 while every threshold passes",
                                     prometheus::MetricType::Gauge, {}};
    prometheus::ClientMetric t;
    t.gauge.value = state.thresholds_passing ? 1 : 0;
    passing.metric.push_back(t);
    out.push_back(std::move(passing));
    return out;
  }

 private:
  ExporterConfig config_;
  WithMetrics with_metrics_;
  StateFn state_;
  std::set<std::string> labels_;
  mutable std::mutex mu_;
  mutable std::set<std::string> warned_;  // guarded by mu_
  mutable uint64_t dropped_scrapes_ = 0;  // guarded by mu_
};

struct PrometheusExporter::Impl {
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<Collector> collector;
  std::string address;
};

absl::StatusOr<std::unique_ptr<PrometheusExporter>> PrometheusExporter::Start(const ExporterConfig& config,
                                                                              WithMetrics with_metrics, StateFn state) {
  static const std::regex kLabel("^[a-zA-Z_][a-zA-Z0-9_]*$");
  for (const std::string& l : config.extra_labels) {
    if (!std::regex_match(l, kLabel) || l == "quantile" || l == "le") {
      return absl::InvalidArgumentError(absl::StrCat("--prometheus-label: '", l, "' is not a usable Prometheus label name"));
    }
  }
  const size_t colon = config.address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(config.address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--prometheus: expected HOST:PORT, got '", config.address, "'"));
  }
  auto out = std::unique_ptr<PrometheusExporter>(new PrometheusExporter());
  out->impl_ = std::make_unique<Impl>();
  try {
    // civetweb (inside prometheus-cpp) reports a failed bind by throwing.
    out->impl_->exposer = std::make_unique<prometheus::Exposer>(config.address, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--prometheus: cannot listen on ", config.address,
                                               " (address in use or not local): ", e.what()));
  }
  out->impl_->collector = std::make_shared<Collector>(config, std::move(with_metrics), std::move(state));
  out->impl_->exposer->RegisterCollectable(out->impl_->collector);
  const std::vector<int> ports = out->impl_->exposer->GetListeningPorts();
  out->impl_->address = absl::StrCat(config.address.substr(0, colon), ":", ports.empty() ? port : ports.front());
  return out;
}

PrometheusExporter::~PrometheusExporter() = default;

std::string PrometheusExporter::address() const { return impl_->address; }

std::string PrometheusExporter::Render() {
  return prometheus::TextSerializer().Serialize(impl_->collector->Collect());
}

}  // namespace barrage::metrics
