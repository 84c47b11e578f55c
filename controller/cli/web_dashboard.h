// `barrage run --dashboard[=ADDR]` and `--report FILE` (and k6's
// K6_WEB_DASHBOARD* variables): the glue between the run's flags and state
// and controller/dashboard.
#ifndef BARRAGE_CONTROLLER_CLI_WEB_DASHBOARD_H_
#define BARRAGE_CONTROLLER_CLI_WEB_DASHBOARD_H_

#include <memory>

#include "absl/status/statusor.h"
#include "controller/cli/prepare.h"
#include "controller/cli/run_loop.h"
#include "controller/cli/run_settings.h"
#include "controller/coordinator.h"
#include "controller/dashboard/dashboard.h"

namespace barrage::cli {

// Null when neither the flags nor the environment ask for it. Errors (a bad
// address, one in use, an unwritable report path) name the flag or
// variable; the caller exits 104 with them before the test starts.
absl::StatusOr<std::unique_ptr<dashboard::Dashboard>> StartWebDashboard(const RunFlags& flags,
                                                                        controller::Coordinator& coordinator,
                                                                        const Prepared& prepared, RunState& state);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_WEB_DASHBOARD_H_
