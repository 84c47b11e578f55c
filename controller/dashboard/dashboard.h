// The web dashboard of `barrage run` (issue 17): a page served by the
// controller that follows the merged run live, and, at the end, the same
// page as one self-contained HTML file with the whole run's data and the
// end-of-test summary inlined (--report, K6_WEB_DASHBOARD_EXPORT).
//
// A thread reads the coordinator every period (K6_WEB_DASHBOARD_PERIOD,
// 10 s by default as in k6) into a bounded History and sends the new point
// and the run's state (phase, progress, agents, thresholds, totals) to
// every connected page as a server-sent event. Routes: / (the page),
// /events (the SSE stream; the first event is the whole state so far),
// /api/snapshot (the same as JSON), /report (the report as it would be
// written now). The page's code (controller/dashboard/page) and uPlot
// (npm, pinned in scripts/js/package-lock.json) are compiled into the
// binary: nothing is fetched from elsewhere, at run time or when the
// report is opened.
#ifndef BARRAGE_CONTROLLER_DASHBOARD_DASHBOARD_H_
#define BARRAGE_CONTROLLER_DASHBOARD_DASHBOARD_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/coordinator.h"
#include "controller/dashboard/settings.h"
#include "controller/thresholds.h"
#include "nlohmann/json.hpp"

namespace barrage::dashboard {

struct DashboardInput {
  controller::Coordinator& coordinator;
  const controller::ThresholdEvaluator* thresholds = nullptr;  // null or empty: none shown
  std::function<std::string()> phase;  // "init", "setup", "running", "teardown", "done"
  std::string script;                  // its name, for the title
  std::vector<std::string> trend_stats;
  std::string time_unit;
};

// The page with `report` inlined (a report), or without (the live page).
std::string RenderPage(const nlohmann::json* report);

class Dashboard {
 public:
  // Listens at once when settings.serve: an address in use or invalid is an
  // error naming it, before anything else runs.
  static absl::StatusOr<std::unique_ptr<Dashboard>> Start(const DashboardSettings& settings, DashboardInput input);
  ~Dashboard();

  std::string url() const;  // "" without a server

  // At the end of the test: the last point, "end" to the pages, and the
  // report written (errors logged naming the file; the run's exit code is
  // not changed). test_duration as the summary counts it.
  void Finish(absl::Duration test_duration, const std::optional<std::string>& setup_data);

  // The state the pages get, as JSON (for tests and /api/snapshot).
  nlohmann::json Snapshot();

 private:
  class Impl;
  explicit Dashboard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace barrage::dashboard

#endif  // BARRAGE_CONTROLLER_DASHBOARD_DASHBOARD_H_
