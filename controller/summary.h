// The end of a run as people and tools see it: the summary text printed
// after the run (spec §4.4), the --summary-export JSON (§4.5) and the data
// handed to handleSummary() (§3.6).
//
// Two layers, so that each can be tested alone:
//   1. BuildSummaryReport() reads the merged MetricStore and computes every
//      value the text shows (a SummaryReport: numbers, not strings);
//   2. RenderSummaryReport() lays a report out exactly as k6 does: column
//      widths, dots, trailing spaces, colours.
// RenderSummaryText() is the two together. The JSON functions read the
// store directly, since they need no layout.
//
// Checks and groups are not metrics of their own: they are read from the
// tags of the `checks` series (`check` = the name, `group` = the group path,
// "" at the root, "::outer::inner" when nested) and of the `group_duration`
// series. The order of first use is the earliest sample time
// (Aggregate::first_seen_ns()).
//
// All functions are pure: no I/O, no clock, safe from any thread as long
// as nobody writes to the store meanwhile.
#ifndef BARRAGE_CONTROLLER_SUMMARY_H_
#define BARRAGE_CONTROLLER_SUMMARY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/metrics/metric.h"
#include "common/metrics/metric_store.h"
#include "controller/format.h"
#include "nlohmann/json.hpp"

namespace barrage::controller {

// One threshold expression after the final evaluation.
struct ThresholdOutcome {
  std::string source;       // the expression as written: "p(95)<200"
  bool ok = true;           // false: the threshold failed
  std::string aggregation;  // "p(95)", "rate", "count", ...
  std::optional<double> value;  // what it was compared with; none for an empty Rate
};

// The expressions of one threshold key.
struct ThresholdSet {
  std::string key;     // as written: "grpc_req_duration{method:SayHello}"
  std::string metric;  // "grpc_req_duration"
  metrics::TagSet filter;  // {method: SayHello}; empty for a whole metric
  std::vector<ThresholdOutcome> outcomes;
};

// kCompact: thresholds and totals. kFull: also one section per group and
// per scenario other than "default" (`--summary-mode full`). kLegacy: k6's
// pre-1.0 layout (`--summary-mode legacy`, RenderLegacySummary).
enum class SummaryMode { kCompact, kFull, kLegacy };

struct SummaryInput {
  const metrics::MetricStore* store = nullptr;  // merged, whole run
  std::vector<ThresholdSet> thresholds;         // evaluated already; empty with --no-thresholds
  std::vector<std::string> trend_stats = {"avg", "min", "med", "max", "p(90)", "p(95)"};
  std::string time_unit;                        // "", "s", "ms", "us"
  absl::Duration test_run_duration;             // for counter rates
  std::optional<std::string> setup_data_json;   // setup()'s return value as JSON text
  SummaryMode mode = SummaryMode::kCompact;
  bool color = false;     // ANSI colours in the text (a TTY and no --no-color)
  bool no_color = false;  // the --no-color option as given, for handleSummary's options
};

// ---- Layer 1: the report, values computed but not formatted.

// A metric or sub-metric with its values under k6's names: Counter
// "count", "rate" (per second); Gauge "value", "min", "max"; Rate "rate",
// "passes", "fails"; Trend one entry per trend stat ("avg", "p(95)", ...).
struct MetricSummary {
  std::string name;  // "grpc_req_duration", or "grpc_req_duration{method:SayHello}"
  metrics::MetricType type = metrics::MetricType::kCounter;
  metrics::ValueType contains = metrics::ValueType::kDefault;
  std::map<std::string, double> values;
};

struct CheckSummary {
  std::string name;
  uint64_t passes = 0;
  uint64_t fails = 0;
};

// The checks block: totals come from the `checks` Rate, the list from its
// series by `check` tag, in order of first use.
struct ChecksSummary {
  uint64_t total = 0;
  uint64_t passes = 0;
  double total_rate = 0;  // checks per second of the run
  std::vector<CheckSummary> checks;
};

// The totals, a group or a scenario. Metrics in any order: the renderer
// files them into categories and sorts them; `checks` and `group_duration`
// are never shown.
struct SummaryGroup {
  std::optional<ChecksSummary> checks;  // none: no checks ran here
  std::vector<MetricSummary> metrics;
  std::map<std::string, SummaryGroup> groups;  // nested groups, by name
};

struct SummaryThresholds {
  MetricSummary metric;  // name = the threshold key
  std::vector<ThresholdOutcome> outcomes;
};

struct SummaryReport {
  std::vector<SummaryThresholds> thresholds;
  SummaryGroup total;
  std::map<std::string, SummaryGroup> groups;     // top-level groups; full mode only
  std::map<std::string, SummaryGroup> scenarios;  // scenarios but "default"; full mode only
};

struct RenderOptions {
  std::vector<std::string> trend_stats = {"avg", "min", "med", "max", "p(90)", "p(95)"};
  std::string time_unit;
  SummaryMode mode = SummaryMode::kCompact;  // compact hides HTTP timing breakdowns
  bool color = false;
};

// Listed: every metric with at least one sample, plus every metric or
// sub-metric named by a threshold (with zero values when it has none). In
// full mode, also each group's and scenario's own samples, as k6 files
// them: a sample goes to its scenario's section (unless the scenario is
// "default") and to its innermost group only.
SummaryReport BuildSummaryReport(const SummaryInput& input);

// k6's textSummary(): starts with a newline, each section ends with an
// empty line. The caller prints "\n" + text + "\n\n" (spec §4.3).
std::string RenderSummaryReport(const SummaryReport& report, const RenderOptions& options);

// ---- The outputs.

// BuildSummaryReport + RenderSummaryReport; in legacy mode,
// RenderLegacySummary over BuildHandleSummaryData.
std::string RenderSummaryText(const SummaryInput& input);

// k6 v1.x's legacy summary (internal/js/summary-legacy.js ported): the
// checks of each group first, then one flat list of every listed metric
// (checks and group_duration included), sorted by name, a threshold's mark
// before its metric. `data` is handleSummary()'s argument.
std::string RenderLegacySummary(const nlohmann::json& data, bool color);

// The --summary-export file (§4.5): 4-space indented JSON, groups and
// checks keyed by name, a Rate's "rate" called "value", thresholds mapped
// to true when they FAILED. No trailing newline (k6 writes none).
std::string RenderSummaryExport(const SummaryInput& input);

// handleSummary()'s argument (§3.6): groups and checks as arrays, values
// under "values", thresholds as {ok}. setup_data is left out when setup
// returned nothing, and also when its JSON text does not parse.
nlohmann::json BuildHandleSummaryData(const SummaryInput& input, bool stdout_tty, bool stderr_tty);

// md5 hex of a group or check path: k6's ids ("" -> d41d8cd9...).
std::string PathId(const std::string& path);

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_SUMMARY_H_
