#include "controller/cli/report.h"

#include "common/output_file.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/summary_outputs.h"
#include "controller/cli/exit_codes.h"
#include "controller/cli/signals.h"
#include "controller/summary.h"
#include "controller/thresholds.h"
#include "nlohmann/json.hpp"

namespace barrage::cli {
namespace {

// The first error decides the code (spec §4.2): what the run gave, then a
// lost agent, test.abort(), failed thresholds, test.fail(), and last,
// data dropped at a limit (112).
int FinalExitCode(const ReportInput& in, const RunOutcome& outcome,
                  const controller::ThresholdEvaluator::Result& final_eval) {
  int exit_code = outcome.exit_code;
  if (outcome.agent_lost && exit_code == kExitOk) exit_code = kExitAgentLost;
  if (auto reason = in.coordinator.abort_reason()) {
    barrage::Log(Severity::kError, *reason);
    if (exit_code == kExitOk) exit_code = kExitScriptAborted;
  }
  if (!final_eval.failed_metrics.empty()) {
    barrage::Log(Severity::kError, absl::StrCat("thresholds on metrics '", absl::StrJoin(final_eval.failed_metrics, ", "),
                                                "' have been crossed"));
    if (exit_code == kExitOk) exit_code = kExitThresholdsFailed;
  }
  if (in.coordinator.test_failed() && exit_code == kExitOk) exit_code = kExitTestFailed;
  if (in.coordinator.Dropped().dropped_series > 0 && exit_code == kExitOk) exit_code = kExitDataDropped;
  return exit_code;
}

// The summary's line about data dropped at a limit; empty when none was.
std::string DroppedLine(const metrics::MergeReport& dropped) {
  if (dropped.dropped_series == 0) return "";
  return absl::StrCat("WARNING: ", dropped.dropped_samples, " samples in ", dropped.dropped_series,
                      " new series were dropped at ", dropped.why, " (first: ", dropped.first_dropped,
                      "); the totals of those metrics are incomplete");
}

// Writes handleSummary()'s outputs: "stdout", "stderr" or a file path.
// The Go type k6 names for a value handleSummary() may not return.
std::string GoTypeName(const nlohmann::json& v) {
  if (v.is_null()) return "<nil>";
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer() || v.is_number_unsigned()) return "int64";
  if (v.is_number()) {
    const double d = v.get<double>();
    return d == static_cast<double>(static_cast<int64_t>(d)) ? "int64" : "float64";
  }
  if (v.is_array()) return "[]interface {}";
  return "map[string]interface {}";
}

// Each output's content: a string as it is, an ArrayBuffer's bytes (sent
// as {kSummaryBytesKey: base64}); anything else is k6's error, and then
// nothing is written, as k6 checks every value before writing any.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> SummaryOutputContents(
    const nlohmann::json& outputs) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, value] : outputs.items()) {
    std::string content;
    if (value.is_string()) {
      content = value.get<std::string>();
    } else if (value.is_object() && value.size() == 1 && value.contains(kSummaryBytesKey) &&
               value[kSummaryBytesKey].is_string() &&
               absl::Base64Unescape(value[kSummaryBytesKey].get<std::string>(), &content)) {
    } else {
      return absl::InvalidArgumentError(absl::StrCat("error handling summary object ", key, ": invalid type ",
                                                     GoTypeName(value), ", it needs to be a string or ArrayBuffer"));
    }
    out.emplace_back(key, std::move(content));
  }
  return out;
}

void WriteSummaryOutputs(const nlohmann::json& outputs) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> contents = SummaryOutputContents(outputs);
  if (!contents.ok()) {
    barrage::Log(Severity::kError, "failed to handle the end-of-test summary",
                 {{"error", std::string(contents.status().message())}});
    return;
  }
  for (const auto& [key, content] : *contents) {
    if (key == "stdout" || key == "stderr") {
      FILE* stream = key == "stdout" ? stdout : stderr;
      fwrite(content.data(), 1, content.size(), stream);
      fflush(stream);
    } else if (key.find('\0') != std::string::npos) {
      // The OS would stop at the NUL and write another file than the one named.
      barrage::Log(Severity::kError, absl::StrCat("handleSummary(): cannot write \"", absl::CHexEscape(key),
                                                  "\": the path holds a NUL character"));
    } else if (absl::Status st = WriteWholeFile(key, content); !st.ok()) {
      barrage::Log(Severity::kError, absl::StrCat("handleSummary(): cannot write ", st.message()));
    }
  }
}

// handleSummary(data) on an agent (spec §3.6): its returned map goes to
// stdout ("stdout"), stderr ("stderr") or files (any other key, a path).
// False when it failed or returned something else than an object: the
// default summary is printed then, as k6 does.
bool HandleSummary(controller::Coordinator& coordinator, const controller::SummaryInput& in, const Options& options) {
  const nlohmann::json data =
      controller::BuildHandleSummaryData(in, isatty(STDOUT_FILENO) != 0, isatty(STDERR_FILENO) != 0);
  controller::SummaryInput plain = in, color = in;
  plain.color = false;
  color.color = true;
  const int signals = StopSignalsReceived();
  absl::StatusOr<v1::LifecycleResult> r =
      coordinator.RunLifecycle("handleSummary", data.dump(), options.HandleSummaryTimeout(),
                               controller::RenderSummaryText(plain), controller::RenderSummaryText(color));
  if (StopSignalsReceived() > signals) {
    barrage::Log(Severity::kWarning, "handleSummary() was interrupted by a signal", {{"hint", "the default summary follows"}});
    return false;
  }
  if (!r.ok() || !r->ok()) {
    barrage::Log(Severity::kError,
                 absl::StrCat("handleSummary() failed: ", r.ok() ? r->error() : std::string(r.status().message())),
                 {{"hint", "the default summary follows"}});
    return false;
  }
  nlohmann::json out = r->has_data() ? nlohmann::json::parse(r->data_json(), nullptr, false) : nlohmann::json();
  // k6: undefined or null means "the default summary" (nothing logged);
  // anything else that is not an object is an error, and nothing is printed.
  if (out.is_null()) return false;
  if (!out.is_object()) {
    barrage::Log(Severity::kError, "handleSummary() should return a map with string keys");
    return true;
  }
  WriteSummaryOutputs(out);
  return true;
}

// --summary-export: k6's JSON, plus each agent's share in distributed runs.
void WriteSummaryExport(const ReportInput& in, const controller::SummaryInput& summary,
                        const std::vector<controller::AgentSummary>& agents) {
  nlohmann::json exported = nlohmann::json::parse(controller::RenderSummaryExport(summary));
  if (!in.plan.embedded) {
    nlohmann::json list = nlohmann::json::array();
    for (const controller::AgentSummary& a : agents) {
      list.push_back({{"name", a.name}, {"segment", a.segment}, {"vus", a.vus}, {"state", a.state},
                      {"iterations_completed", a.iterations_completed},
                      {"iterations_interrupted", a.iterations_interrupted}});
    }
    exported["agents"] = list;
  }
  if (const metrics::MergeReport dropped = in.coordinator.Dropped(); dropped.dropped_series > 0) {
    exported["dropped"] = {{"series", dropped.dropped_series}, {"samples", dropped.dropped_samples},
                           {"first", dropped.first_dropped}, {"limit", dropped.why}};
  }
  if (absl::Status st = WriteWholeFile(*in.flags.summary_export, exported.dump(4)); !st.ok()) {
    barrage::Log(Severity::kError, absl::StrCat("--summary-export: cannot write ", st.message()));
  }
}

// The text summary (or handleSummary's outputs), then the export.
void PrintSummary(const ReportInput& in, const RunOutcome& outcome, const metrics::MetricStore& total,
                  const controller::ThresholdEvaluator::Result& final_eval,
                  const std::vector<controller::AgentSummary>& agents) {
  const Options& options = in.prepared.options;
  controller::SummaryInput summary;
  summary.store = &total;
  summary.thresholds = final_eval.sets;
  summary.trend_stats = options.TrendStats();
  summary.time_unit = options.summary_time_unit.value_or("");
  summary.test_run_duration = outcome.test_duration;
  summary.setup_data_json = outcome.setup_data;
  summary.color = isatty(STDOUT_FILENO) && !in.flags.no_color;
  summary.no_color = in.flags.no_color;
  const std::string mode = SummaryMode(in.flags);
  summary.mode = mode == "full"     ? controller::SummaryMode::kFull
                 : mode == "legacy" ? controller::SummaryMode::kLegacy
                                    : controller::SummaryMode::kCompact;
  const std::string text = controller::RenderSummaryText(summary);
  // The controller's init pass saw the exports (the agents may not have got
  // as far, when a VU's init failed).
  const std::vector<std::string>& exported = in.prepared.exported;
  const bool has_handle_summary = std::find(exported.begin(), exported.end(), "handleSummary") != exported.end();
  const bool handled = has_handle_summary && HandleSummary(in.coordinator, summary, options);
  const std::string dropped = DroppedLine(in.coordinator.Dropped());
  if (!handled) {
    fputs(absl::StrCat("\n", text, "\n\n").c_str(), stdout);
    if (!dropped.empty()) fputs(absl::StrCat("     ", dropped, "\n\n").c_str(), stdout);
    fflush(stdout);
  } else if (!dropped.empty()) {
    barrage::Log(Severity::kWarning, dropped);  // handleSummary's stdout is its own
  }
  if (in.flags.summary_export) WriteSummaryExport(in, summary, agents);
}

}  // namespace

int Report(const ReportInput& in, const RunOutcome& outcome) {
  // The agents' states as the run left them (handleSummary runs on one).
  const std::vector<controller::AgentSummary> agents = in.coordinator.Agents();
  metrics::MetricStore total;
  in.coordinator.WithMetrics([&](metrics::MetricStore& merged) { (void)total.Merge(merged); });
  const controller::ThresholdEvaluator::Result final_eval =
      in.prepared.thresholds->Evaluate(total, outcome.test_duration, true);
  int exit_code = FinalExitCode(in, outcome, final_eval);
  in.state.thresholds_passing = final_eval.failed_metrics.empty();
  in.state.phase = 4;
  // Disabled (--summary-mode=disabled or --no-summary): no text, no
  // handleSummary and no --summary-export, as in k6.
  if (SummaryMode(in.flags) != "disabled") PrintSummary(in, outcome, total, final_eval, agents);
  // A signal that came while handleSummary() ran (the summary is printed
  // all the same).
  if (StopSignalsReceived() > 0 && exit_code == kExitOk) exit_code = kExitExternalAbort;
  return exit_code;
}

}  // namespace barrage::cli
