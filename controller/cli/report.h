// The end of `barrage run` (spec §4.2, §4.4, §4.5, §3.5): the final
// threshold evaluation over the merged metrics, the exit code (the first
// error decides it), and the summary: k6's text, handleSummary() on an
// agent, --summary-export.
#ifndef BARRAGE_CONTROLLER_CLI_REPORT_H_
#define BARRAGE_CONTROLLER_CLI_REPORT_H_

#include "controller/cli/prepare.h"
#include "controller/cli/run_loop.h"
#include "controller/cli/run_settings.h"
#include "controller/coordinator.h"

namespace barrage::cli {

struct ReportInput {
  controller::Coordinator& coordinator;
  const Prepared& prepared;
  const RunFlags& flags;
  const AgentPlan& plan;
  RunState& state;
};

// Evaluates, logs and prints; returns the run's exit code.
int Report(const ReportInput& in, const RunOutcome& outcome);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_REPORT_H_
