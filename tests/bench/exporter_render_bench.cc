// The Prometheus exporter's render (what one /metrics scrape computes) on a
// store shaped like exporter_cost.sh's: N simulated agents x 50 distinct
// series (counters, rates, trends of lognormal latencies in ms, gauges),
// after a number of merged intervals. Prints the CPU time per render, its
// size and sample lines, in-process: no swarm, no HTTP, so it can be run
// quickly beside the end-to-end exporter_cost.sh.
//   exporter_render_bench [--agents 200] [--intervals 20] [--renders 20]
#include <time.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <random>
#include <vector>
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/metrics/metric_store.h"
#include "common/metrics/prometheus_exporter.h"

namespace {

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"exporter_render_bench: CPU per /metrics render"};
  int agents = 200, series = 50, samples = 200, intervals = 20, renders = 20;
  std::string dump;
  app.add_option("--agents", agents, "simulated agents");
  app.add_option("--series", series, "series per agent");
  app.add_option("--samples", samples, "samples per trend series per interval");
  app.add_option("--intervals", intervals, "intervals merged before rendering");
  app.add_option("--renders", renders, "renders timed");
  app.add_option("--dump", dump, "write the last render to this file");
  CLI11_PARSE(app, argc, argv);
  using barrage::metrics::MetricType;
  using barrage::metrics::ValueType;
  static const char* kNames[] = {"sim_requests", "sim_checks", "sim_latency", "sim_gauge"};
  static const MetricType kTypes[] = {MetricType::kCounter, MetricType::kRate, MetricType::kTrend, MetricType::kGauge};
  barrage::metrics::MetricStore store;
  for (int kind = 0; kind < 4; ++kind) {
    (void)store.Define({kNames[kind], kTypes[kind], kind == 2 ? ValueType::kTime : ValueType::kDefault});
  }
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> latency(0.0, 0.6);
  for (int interval = 0; interval < intervals; ++interval) {
    const int64_t now = (1700000000LL + interval) * 1000000000LL;
    for (int a = 1; a <= agents; ++a) {
      for (int s = 0; s < series; ++s) {
        const int kind = s % 4;
        const barrage::metrics::TagSet tags = {
            {"method", absl::StrCat("A", a, "Method", s / 4)}, {"status", "0"}, {"scenario", "default"}};
        if (kind == 0) {
          store.Add(kNames[kind], tags, 100, now);
        } else if (kind == 1) {
          for (int i = 0; i < 10; ++i) store.Add(kNames[kind], tags, i % 10 != 0, now);
        } else if (kind == 2) {
          for (int i = 0; i < samples; ++i) store.Add(kNames[kind], tags, latency(rng), now);
        } else {
          store.Add(kNames[kind], tags, a, now);
        }
      }
    }
  }
  barrage::metrics::ExporterConfig config;
  config.address = "127.0.0.1:0";
  config.max_series = 1000000;
  auto exporter = barrage::metrics::PrometheusExporter::Start(
      config, [&store](const std::function<void(barrage::metrics::MetricStore&)>& fn) { fn(store); },
      [] { return barrage::metrics::RunState{1, "running", true}; });
  if (!exporter.ok()) {
    std::cerr << exporter.status() << "\n";
    return 1;
  }
  std::string text;
  (*exporter)->RenderInto(text);  // warm-up: the endpoint reuses its buffers
  // Each render timed alone; the median and the fastest are reported (the
  // machine may be shared: the fastest is the least disturbed).
  std::vector<double> ms;
  for (int i = 0; i < renders; ++i) {
    const double t0 = CpuSeconds();
    (*exporter)->RenderInto(text);
    ms.push_back((CpuSeconds() - t0) * 1000);
  }
  std::sort(ms.begin(), ms.end());
  if (!dump.empty()) std::ofstream(dump) << text;
  size_t lines = 0;
  for (size_t pos = 0; (pos = text.find("\nbarrage_", pos)) != std::string::npos; ++pos) ++lines;
  std::cout << absl::StrFormat(
      "exporter render: %d series, %zu sample lines, %zu bytes: %.1f ms of CPU per render (median of %d; fastest %.1f)\n",
      static_cast<int>(store.series_count()), lines, text.size(), ms[ms.size() / 2], renders, ms.front());
  return 0;
}
