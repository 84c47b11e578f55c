#include "common/metrics/prometheus_exporter.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <limits>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/http_server.h"
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
// representative value is within the bound): Histogram::QuantilesAndCounts
// at BucketLimits, in the walk that reads the quantiles.
constexpr size_t kNumBounds = std::size(kBounds);

// The text format (https://prometheus.io/docs/instrumenting/exposition_formats/),
// written straight into one string. prometheus-cpp's MetricFamily objects
// and ostream serializer cost 60 of the 75 ms of CPU one render took at
// 10,000 series (perf: ostream inserts, printf of doubles, label vectors
// compared in maps); the format is a few lines of text per series.
void AppendDouble(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-Inf" : "+Inf";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest form that reads back exactly
    out.append(buf, r.ptr);
  }
}

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// A label value: backslash, double quote and newline escaped.
void AppendLabelValue(std::string& out, const std::string& v) {
  // find_first_of would call memchr per character; one pass instead.
  bool plain = true;
  for (char c : v) plain &= c != '\\' && c != '"' && c != '\n';
  if (plain) {
    out += v;
    return;
  }
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// HELP text: backslash and newline escaped.
void AppendHelp(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// name{labels,extra} value\n; labels is the rendered `k="v",...` text.
// The line is put together in a buffer on the stack and appended at once:
// appending its ten pieces one by one was a fifth of a render.
template <typename Number>
void AppendLine(std::string& out, std::string_view name, std::string_view suffix, std::string_view labels,
                std::string_view extra, Number value) {
  char buf[512];
  const size_t fixed = name.size() + suffix.size() + labels.size() + extra.size() + 4;
  if (fixed + 32 > sizeof(buf)) {  // a long line: piece by piece
    out.append(name).append(suffix);
    if (!labels.empty() || !extra.empty()) {
      out.append("{").append(labels);
      if (!labels.empty() && !extra.empty()) out += ',';
      out.append(extra).append("}");
    }
    out += ' ';
    if constexpr (std::is_same_v<Number, double>) {
      AppendDouble(out, value);
    } else {
      AppendUint(out, value);
    }
    out += '\n';
    return;
  }
  char* p = buf;
  auto put = [&p](std::string_view piece) {
    memcpy(p, piece.data(), piece.size());
    p += piece.size();
  };
  put(name);
  put(suffix);
  if (!labels.empty() || !extra.empty()) {
    *p++ = '{';
    put(labels);
    if (!labels.empty() && !extra.empty()) *p++ = ',';
    put(extra);
    *p++ = '}';
  }
  *p++ = ' ';
  if constexpr (std::is_same_v<Number, double>) {
    if (std::isfinite(value)) {
      p = std::to_chars(p, buf + sizeof(buf), value).ptr;
    } else {
      out.append(buf, p);
      AppendDouble(out, value);
      out += '\n';
      return;
    }
  } else {
    p = std::to_chars(p, buf + sizeof(buf), value).ptr;
  }
  *p++ = '\n';
  out.append(buf, p);
}

void AppendSample(std::string& out, const std::string& name, const std::string& labels, std::string_view extra,
                  double value) {
  AppendLine(out, name, "", labels, extra, value);
}
void AppendSampleUint(std::string& out, const std::string& name, const std::string& suffix, const std::string& labels,
                      std::string_view extra, uint64_t value) {
  AppendLine(out, name, suffix, labels, extra, value);
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

class PrometheusExporter::Collector {
 public:
  Collector(const ExporterConfig& config, WithMetrics with_metrics, StateFn state)
      : config_(config), with_metrics_(std::move(with_metrics)), state_(std::move(state)) {
    std::set<std::string> labels(DefaultExportedLabels().begin(), DefaultExportedLabels().end());
    labels.insert(config.extra_labels.begin(), config.extra_labels.end());
    exported_.assign(labels.begin(), labels.end());
    // %g's spelling of the bounds (to_chars' shortest would say 1e-04):
    // dashboards and recording rules match `le` as text.
    for (double b : kBounds) le_labels_.push_back(absl::StrCat("le=\"", absl::StrFormat("%g", b), "\""));
  }

  // One series of the page: a metric and its exported labels, with the
  // numbers its lines need, read under the owner's lock.
  struct Row {
    std::string labels;  // `k="v",...`, sorted by label name
    double value = 0;    // counter: sum (scaled); gauge: last (scaled)
    uint64_t count = 0;  // rate and trend
    uint64_t passes = 0;
    double sum = 0;      // trend (scaled)
    std::array<uint64_t, kNumBounds> buckets{};
    std::array<double, 4> quantiles{};
  };
  struct Family {
    MetricDef def;
    std::vector<Row> rows;
  };

  // Renders into out (cleared first; its capacity is reused).
  void Render(std::string& out) const {
    // Under the owner's lock: the series grouped by metric and exported
    // labels (series that differ only in other tags merge), and each
    // group's numbers. Aggregates are copied only where groups merge.
    std::map<std::string, Family> families;
    std::set<std::string> over_limit;
    with_metrics_([&](MetricStore& store) {
      struct Group {
        const Aggregate* single = nullptr;
        std::optional<Aggregate> merged;
      };
      std::unordered_map<std::string, absl::flat_hash_map<std::string, Group>> groups;
      size_t series = 0;
      std::string labels;
      // ForEachSeries visits a metric's series together: its group map is
      // looked up once per run of them, not once per series.
      const std::string* last_metric = nullptr;
      absl::flat_hash_map<std::string, Group>* by_labels = nullptr;
      store.ForEachSeries("", [&](const std::string& metric, const TagSet& tags, const Aggregate& agg) {
        // Both sorted: the exported labels by one merge walk.
        labels.clear();
        auto want = exported_.begin();
        for (auto tag = tags.begin(); tag != tags.end() && want != exported_.end();) {
          const int c = tag->first.compare(*want);
          if (c < 0) {
            ++tag;
          } else if (c > 0) {
            ++want;
          } else {
            if (!tag->second.empty()) {
              if (!labels.empty()) labels += ',';
              labels += tag->first;
              labels += "=\"";
              AppendLabelValue(labels, tag->second);
              labels += '"';
            }
            ++tag;
            ++want;
          }
        }
        if (last_metric == nullptr || *last_metric != metric) {
          by_labels = &groups[metric];
          last_metric = &metric;
        }
        auto it = by_labels->find(labels);
        if (it != by_labels->end()) {
          Group& g = it->second;
          if (!g.merged) g.merged = *g.single;
          g.merged->Merge(agg);
          return;
        }
        if (series >= config_.max_series) {
          over_limit.insert(metric);
          return;
        }
        ++series;
        by_labels->emplace(labels, Group{&agg, std::nullopt});
      });
      for (auto& [metric, by_labels] : groups) {
        const MetricDef* def = store.Find(metric);
        if (def == nullptr) continue;
        Family& f = families[metric];
        f.def = *def;
        f.rows.reserve(by_labels.size());
        const double scale = Scale(*def);
        const std::vector<int32_t> limits = def->type == MetricType::kTrend ? BucketLimits(scale) : std::vector<int32_t>();
        for (auto& [labels_text, g] : by_labels) {
          const Aggregate& agg = g.merged ? *g.merged : *g.single;
          Row r;
          r.labels = labels_text;
          switch (def->type) {
            case MetricType::kCounter:
              r.value = agg.sum() * scale;
              break;
            case MetricType::kGauge:
              r.value = agg.last() * scale;
              break;
            case MetricType::kRate:
              r.count = agg.count();
              r.passes = agg.passes();
              break;
            case MetricType::kTrend: {
              const Histogram& h = agg.histogram();
              r.count = h.count();
              r.sum = h.sum() * scale;
              h.QuantilesAndCounts(kQuantiles, r.quantiles, limits, r.buckets);
              for (double& q : r.quantiles) q *= scale;
              break;
            }
          }
          f.rows.push_back(std::move(r));
        }
      }
    });
    // After the lock: warnings, then the text.
    out.clear();
    size_t rows = 0;
    for (const auto& [metric, f] : families) rows += f.rows.size() * (f.def.type == MetricType::kTrend ? 26 : 2);
    out.reserve(rows * 110 + 4096);
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
      AppendHelp(out, "barrage_exporter_series_dropped_scrapes_total",
                 "scrapes at which some series were over the exporter's limit", "counter");
      AppendSampleUint(out, "barrage_exporter_series_dropped_scrapes_total", "", "", "", dropped_scrapes_);
    }
    for (auto& [metric, f] : families) {
      // Rows stay in hash order: Prometheus needs none, and sorting 10,000
      // label strings was a twentieth of a scrape.
      const MetricDef& def = f.def;
      const std::string name = PrometheusName(def);
      const std::string help = absl::StrCat("k6 metric ", def.name, " (", std::string(MetricTypeName(def.type)), ")");
      switch (def.type) {
        case MetricType::kCounter:
        case MetricType::kGauge:
          AppendHelp(out, name, help, def.type == MetricType::kCounter ? "counter" : "gauge");
          for (const Row& r : f.rows) AppendSample(out, name, r.labels, "", r.value);
          break;
        case MetricType::kRate: {
          AppendHelp(out, name, absl::StrCat(help, ": samples"), "counter");
          for (const Row& r : f.rows) AppendSampleUint(out, name, "", r.labels, "", r.count);
          const std::string passes = absl::StrCat("barrage_", def.name, "_passes_total");
          AppendHelp(out, passes, absl::StrCat(help, ": non-zero samples"), "counter");
          for (const Row& r : f.rows) AppendSampleUint(out, passes, "", r.labels, "", r.passes);
          break;
        }
        case MetricType::kTrend: {
          AppendHelp(out, name, help, "histogram");
          for (const Row& r : f.rows) {
            AppendSampleUint(out, name, "_count", r.labels, "", r.count);
            AppendLine(out, name, "_sum", r.labels, "", r.sum);
            for (size_t b = 0; b < kNumBounds; ++b) {
              AppendSampleUint(out, name, "_bucket", r.labels, le_labels_[b], r.buckets[b]);
            }
            AppendSampleUint(out, name, "_bucket", r.labels, "le=\"+Inf\"", r.count);
          }
          const std::string quantile = absl::StrCat("barrage_", def.name, "_quantile", Unit(def));
          AppendHelp(out, quantile, absl::StrCat(help, ": quantiles of the merged histogram"), "gauge");
          for (const Row& r : f.rows) {
            for (size_t q = 0; q < std::size(kQuantiles); ++q) {
              AppendSample(out, quantile, r.labels, kQuantileLabels[q], r.quantiles[q]);
            }
          }
          break;
        }
      }
    }
    const RunState state = state_();
    AppendHelp(out, "barrage_agents_connected", "agents in the run", "gauge");
    AppendSample(out, "barrage_agents_connected", "", "", state.agents_connected);
    AppendHelp(out, "barrage_run_phase", "1 for the phase the run is in", "gauge");
    for (const char* p : {"init", "setup", "running", "teardown", "done"}) {
      AppendSample(out, "barrage_run_phase", "", absl::StrCat("phase=\"", p, "\""), state.phase == p ? 1 : 0);
    }
    AppendHelp(out, "barrage_thresholds_passing", "1 while every threshold passes", "gauge");
    AppendSample(out, "barrage_thresholds_passing", "", "", state.thresholds_passing ? 1 : 0);
  }

  // A page for the endpoint, in a buffer that goes back to a pool when the
  // response is sent: a fresh 7 MB string per scrape was mapped and zeroed
  // by the kernel each time (a fifth of a scrape's CPU under glibc's
  // malloc, perf), as an allocator may hand memory that large back.
  std::shared_ptr<const std::string> RenderPooled() const {
    std::unique_ptr<std::string> buf;
    {
      std::lock_guard<std::mutex> lock(pool_->mu);
      if (!pool_->free.empty()) {
        buf = std::move(pool_->free.back());
        pool_->free.pop_back();
      }
    }
    if (!buf) buf = std::make_unique<std::string>();
    Render(*buf);
    return std::shared_ptr<const std::string>(buf.release(), [pool = pool_](const std::string* s) {
      std::lock_guard<std::mutex> lock(pool->mu);
      if (pool->free.size() < 2) {
        pool->free.emplace_back(const_cast<std::string*>(s));
      } else {
        delete s;
      }
    });
  }

 private:
  static constexpr std::string_view kQuantileLabels[] = {"quantile=\"0.5\"", "quantile=\"0.9\"",
                                                         "quantile=\"0.95\"", "quantile=\"0.99\""};
  ExporterConfig config_;
  WithMetrics with_metrics_;
  StateFn state_;
  std::vector<std::string> exported_;  // label names, sorted
  std::vector<std::string> le_labels_;
  mutable std::mutex mu_;
  mutable std::set<std::string> warned_;  // guarded by mu_
  mutable uint64_t dropped_scrapes_ = 0;  // guarded by mu_
  struct Pool {
    std::mutex mu;
    std::vector<std::unique_ptr<std::string>> free;
  };
  std::shared_ptr<Pool> pool_ = std::make_shared<Pool>();
};

struct PrometheusExporter::Impl {
  std::shared_ptr<Collector> collector;
  std::unique_ptr<HttpServer> server;
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
  out->impl_->collector = std::make_shared<Collector>(config, std::move(with_metrics), std::move(state));
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      config.address, [collector = out->impl_->collector](const std::string& target) -> HttpResponse {
        if (target.substr(0, target.find('?')) != "/metrics") return {404, "text/plain; charset=utf-8", "not found\n"};
        HttpResponse r{200, "text/plain; version=0.0.4; charset=utf-8", ""};
        r.shared_body = collector->RenderPooled();
        return r;
      },
      nullptr, "prom-http");
  if (!server.ok()) {
    return absl::UnavailableError(absl::StrCat("--prometheus: cannot listen on ", config.address,
                                               " (address in use or not local): ", server.status().message()));
  }
  out->impl_->server = *std::move(server);
  return out;
}

PrometheusExporter::~PrometheusExporter() {
  if (impl_ && impl_->server) impl_->server->Stop(absl::ZeroDuration());
}

std::string PrometheusExporter::address() const { return impl_->server->address(); }

std::string PrometheusExporter::Render() {
  std::string out;
  impl_->collector->Render(out);
  return out;
}

void PrometheusExporter::RenderInto(std::string& out) { impl_->collector->Render(out); }

}  // namespace barrage::metrics
