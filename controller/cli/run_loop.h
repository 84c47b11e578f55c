// The test itself, once every agent is assigned: setup() on one agent, the
// scenarios on all of them while the controller merges their metrics,
// shows progress, evaluates thresholds (abortOnFail) and handles Ctrl-C,
// lost agents and test.abort(); then teardown(). Runs on the thread of
// `barrage run`; the Prometheus endpoint reads RunState from its own.
#ifndef BARRAGE_CONTROLLER_CLI_RUN_LOOP_H_
#define BARRAGE_CONTROLLER_CLI_RUN_LOOP_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metric_store.h"
#include "controller/cli/prepare.h"
#include "controller/cli/run_settings.h"
#include "controller/coordinator.h"
#include "controller/outputs.h"

namespace barrage::cli {

// The run's phase and threshold state, shared with the Prometheus endpoint.
inline constexpr const char* kRunPhases[] = {"init", "setup", "running", "teardown", "done"};
struct RunState {
  std::atomic<int> phase{0};  // index into kRunPhases
  std::atomic<bool> thresholds_passing{true};
};

struct RunInput {
  controller::Coordinator& coordinator;
  const Prepared& prepared;
  const RunFlags& flags;
  const AgentPlan& plan;
  RunState& state;
  controller::SampleOutputs& outputs;  // --out: the vus gauges go there too; closed at the end
};

struct RunOutcome {
  int exit_code = 0;  // so far: setup/teardown failures, Ctrl-C
  std::optional<std::string> setup_data;  // setup()'s result as JSON
  absl::Duration test_duration;           // from setup's start to teardown's end
  bool agent_lost = false;
};

// setup, the scenarios, teardown. The final progress lines are printed
// unless --quiet.
RunOutcome RunTest(const RunInput& in);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_RUN_LOOP_H_
