// A Prometheus endpoint over a MetricStore: the controller's (`barrage run
// --prometheus ADDR`, the merged metrics of the whole test) and an agent's
// own (`barrage-agent --prometheus ADDR`, for debugging). Rendered at each
// scrape from the store as the text exposition format, written directly
// (prometheus_exporter.cc says why), and served by common/http_server.
//
// Names: `barrage_` + the k6 name + the base unit (time trends in seconds,
// data in bytes); counters end in `_total`; rates are two counters
// (`_total` samples and `_passes_total`); gauges keep their name; trends
// are native histograms (`_bucket`, `_sum`, `_count`) plus a gauge family
// `<name>_quantile` (label `quantile`) read from the merged histogram.
// Labels: only the allow-listed tags (method, status, scenario, group,
// name, check, plus the ones the user names); series that differ only in
// other tags are merged. Run state: barrage_agents_connected,
// barrage_run_phase{phase}, barrage_thresholds_passing.
#ifndef BARRAGE_COMMON_METRICS_PROMETHEUS_EXPORTER_H_
#define BARRAGE_COMMON_METRICS_PROMETHEUS_EXPORTER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics/metric_store.h"

namespace barrage::metrics {

struct RunState {
  int agents_connected = 0;
  std::string phase;  // "init", "setup", "running", "teardown", "done"
  bool thresholds_passing = true;
};

struct ExporterConfig {
  std::string address;                  // HOST:PORT (port 0: any free port)
  std::vector<std::string> extra_labels;  // tags the user wants as labels
  size_t max_series = 10000;            // beyond: dropped, with one warning per metric
};

class PrometheusExporter {
 public:
  // Runs fn with the merged store (under the owner's lock).
  using WithMetrics = std::function<void(const std::function<void(MetricStore&)>&)>;
  using StateFn = std::function<RunState()>;

  // Listens at once; an address in use or invalid is an error naming it.
  static absl::StatusOr<std::unique_ptr<PrometheusExporter>> Start(const ExporterConfig& config,
                                                                   WithMetrics with_metrics, StateFn state);
  ~PrometheusExporter();

  // The bound address, e.g. 127.0.0.1:41234.
  std::string address() const;

  // The text exposition as a scrape would return it (for tests).
  std::string Render();
  // Same, into out, reusing its capacity (what the endpoint does with its
  // buffers; for benchmarks).
  void RenderInto(std::string& out);

  // The renderer behind the endpoint.
  class Collector;

 private:
  PrometheusExporter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Labels that become Prometheus labels by default.
const std::vector<std::string>& DefaultExportedLabels();

// The Prometheus name of a k6 metric: "grpc_req_duration" (trend, time) ->
// "barrage_grpc_req_duration_seconds"; "iterations" (counter) ->
// "barrage_iterations_total".
std::string PrometheusName(const MetricDef& def);

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_PROMETHEUS_EXPORTER_H_
