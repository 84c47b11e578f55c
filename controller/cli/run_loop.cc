#include "controller/cli/run_loop.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "controller/cli/exit_codes.h"
#include "controller/cli/progress_display.h"
#include "controller/cli/signals.h"

namespace barrage::cli {

namespace {

// A setup() or teardown() that failed: logged as k6 logs it, and the exit
// code it gives (setup: 100 for a timeout; teardown: 101).
int LifecycleFailure(const absl::StatusOr<v1::LifecycleResult>& r, int timeout_code) {
  if (r.ok() && !r->timed_out()) {
    barrage::Log(Severity::kError, r->error(), {{"hint", "script exception"}});
  } else {
    barrage::Log(Severity::kError, r.ok() ? r->error() : std::string(r.status().message()));
  }
  if (r.ok() && !r->abort_reason().empty()) return kExitScriptAborted;
  return !r.ok() ? kExitAgentLost : r->timed_out() ? timeout_code : kExitScriptException;
}

// The scenarios, from the start until every agent is done. One tick every
// 100 ms; each step of a tick is a method.
class ScenarioLoop {
 public:
  ScenarioLoop(const RunInput& in, RunOutcome& outcome, absl::Time start_at)
      : in_(in),
        outcome_(outcome),
        test_tags_(in.prepared.options.tags.value_or(metrics::TagSet{})),
        display_(in.prepared.scenarios, in.plan.embedded ? 0 : in.plan.count, isatty(STDERR_FILENO) != 0,
                 absl::Now()) {
    // Bounded even when an agent never finishes (a script stuck in a busy
    // loop cannot be interrupted): past the planned end plus a margin the
    // agents are stopped, and past gracefulStop plus a margin after that,
    // the ones still running are given up on.
    for (const Scenario& sc : in.prepared.scenarios) {
      longest_graceful_stop_ = std::max(longest_graceful_stop_, sc.graceful_stop);
    }
    planned_end_ = start_at + TotalDuration(in.prepared.scenarios) + absl::Seconds(30);
    last_eval_ = last_vus_ = absl::Now();
  }

  void Run(absl::Time test_start) {
    while (!in_.coordinator.AllDone()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const absl::Time now = absl::Now();
      StopAtPlannedEnd(now);
      if (GiveUpOnStuckAgents(now)) break;
      HandleSignals();
      HandleLostAgents();
      HandleAbort();
      const controller::RunProgress progress = in_.coordinator.Progress();
      SampleVus(now, progress);
      EvaluateThresholds(now, test_start);
      if (!in_.flags.quiet) display_.Update(now, now - test_start, progress);
    }
    if (!in_.flags.quiet) display_.Clear();
  }

 private:
  void Stop(const std::string& reason) {
    stopping_ = true;
    in_.coordinator.Stop(reason);
  }

  void StopAtPlannedEnd(absl::Time now) {
    if (now > planned_end_ && !stopping_) {
      barrage::Log(Severity::kWarning, "the test ran past its planned end; stopping the agents");
      Stop("the test ran past its planned end");
    }
    if (stopping_ && stop_sent_ == absl::InfiniteFuture()) stop_sent_ = now;
  }

  bool GiveUpOnStuckAgents(absl::Time now) {
    if (now - stop_sent_ <= longest_graceful_stop_ + absl::Seconds(30)) return false;
    for (const controller::AgentSummary& a : in_.coordinator.Agents()) {
      if (a.state == "running") {
        barrage::Log(Severity::kError, absl::StrCat("agent ", a.name, " did not finish after being stopped; giving up on it"));
      }
    }
    outcome_.agent_lost = true;
    return true;
  }

  void HandleSignals() {
    if (StopSignalsReceived() <= handled_signals_) return;
    handled_signals_ = StopSignalsReceived();
    barrage::Log(Severity::kWarning, "Stopping the test run gracefully (press Ctrl+C again to abort at once)");
    Stop("stopped by the user");
    outcome_.exit_code = kExitExternalAbort;
  }

  void HandleLostAgents() {
    for (const std::string& lost : in_.coordinator.TakeLost()) {
      barrage::Log(Severity::kError, absl::StrCat("agent ", lost, " was lost; the metrics it sent are kept"));
      outcome_.agent_lost = true;
      if (in_.flags.on_agent_loss == "stop" && !stopping_) Stop("an agent was lost");
    }
  }

  void HandleAbort() {
    if (auto reason = in_.coordinator.abort_reason(); reason && !stopping_) Stop(*reason);
  }

  // vus and vus_max are the sums over the agents, sampled here once a
  // second as k6 samples them (agents do not send these gauges).
  void SampleVus(absl::Time now, const controller::RunProgress& progress) {
    if (now - last_vus_ < absl::Seconds(1) || (progress.vus_active <= 0 && vus_sampled_)) return;
    last_vus_ = now;
    vus_sampled_ = true;
    in_.coordinator.WithMetrics([&](metrics::MetricStore& total) {
      total.Add("vus", test_tags_, static_cast<double>(progress.vus_active), absl::ToUnixNanos(now));
      total.Add("vus_max", test_tags_, static_cast<double>(progress.vus_max), absl::ToUnixNanos(now));
    });
    in_.outputs.AddVus(test_tags_, progress.vus_active, progress.vus_max, now);
  }

  void EvaluateThresholds(absl::Time now, absl::Time test_start) {
    const controller::ThresholdEvaluator& thresholds = *in_.prepared.thresholds;
    if (now - last_eval_ < absl::Seconds(2) || thresholds.empty()) return;
    last_eval_ = now;
    controller::ThresholdEvaluator::Result r;
    in_.coordinator.WithMetrics(
        [&](metrics::MetricStore& total) { r = thresholds.Evaluate(total, now - test_start, false); });
    in_.state.thresholds_passing = r.failed_metrics.empty();
    if (r.abort && !threshold_abort_) {
      threshold_abort_ = true;
      barrage::Log(Severity::kError, absl::StrCat("thresholds on metrics '", absl::StrJoin(r.failed_metrics, ", "),
                                                  "' were crossed; at least one has abortOnFail enabled, stopping test prematurely"));
      Stop("thresholds crossed");
    }
  }

  const RunInput& in_;
  RunOutcome& outcome_;
  const metrics::TagSet test_tags_;
  ProgressDisplay display_;
  absl::Duration longest_graceful_stop_;
  absl::Time planned_end_;
  absl::Time stop_sent_ = absl::InfiniteFuture();
  absl::Time last_eval_;
  absl::Time last_vus_;
  bool vus_sampled_ = false;
  int handled_signals_ = 0;
  bool stopping_ = false;
  bool threshold_abort_ = false;
};

void ReportLostAgents(controller::Coordinator& coordinator, RunOutcome& outcome, const char* suffix) {
  for (const std::string& lost : coordinator.TakeLost()) {
    barrage::Log(Severity::kError, absl::StrCat("agent ", lost, " was lost", suffix));
    outcome.agent_lost = true;
  }
}

// false when setup failed (the scenarios and teardown are skipped then).
bool RunSetup(const RunInput& in, RunOutcome& outcome) {
  const Options& options = in.prepared.options;
  if (!in.coordinator.Exports("setup") || options.no_setup.value_or(false)) return true;
  in.state.phase = 1;
  const int signals = StopSignalsReceived();
  absl::StatusOr<v1::LifecycleResult> r = in.coordinator.RunLifecycle("setup", std::nullopt, options.SetupTimeout());
  if (StopSignalsReceived() > signals) {
    // k6 interrupts setup() on the first signal; no scenario runs then.
    barrage::Log(Severity::kWarning, "setup() was interrupted by a signal; the test does not start");
    outcome.exit_code = kExitExternalAbort;
    return false;
  }
  if (!r.ok() || !r->ok()) {
    outcome.exit_code = LifecycleFailure(r, kExitSetupTimeout);
    return false;
  }
  if (r->has_data()) outcome.setup_data = r->data_json();
  return true;
}

void RunTeardown(const RunInput& in, RunOutcome& outcome) {
  const Options& options = in.prepared.options;
  if (!in.coordinator.Exports("teardown") || options.no_teardown.value_or(false)) return;
  in.state.phase = 3;
  const int signals = StopSignalsReceived();
  absl::StatusOr<v1::LifecycleResult> r =
      in.coordinator.RunLifecycle("teardown", outcome.setup_data, options.TeardownTimeout());
  if (StopSignalsReceived() > signals) {
    barrage::Log(Severity::kWarning, "teardown() was interrupted by a signal");
    outcome.exit_code = kExitExternalAbort;
    return;
  }
  if (r.ok() && r->ok()) return;
  const int code = LifecycleFailure(r, kExitTeardownTimeout);
  if (outcome.exit_code == kExitOk) outcome.exit_code = code;
}

}  // namespace

RunOutcome RunTest(const RunInput& in) {
  RunOutcome outcome;
  absl::Time test_start = absl::Now();
  const bool setup_ok = RunSetup(in, outcome);
  in.coordinator.WithMetrics([&](metrics::MetricStore& total) {
    for (const auto& [name, def] : in.prepared.defs) (void)total.Define(def);
  });
  if (setup_ok) {
    // Remote agents get a moment to receive the start before it is due.
    const absl::Time start_at = absl::Now() + (in.plan.embedded ? absl::ZeroDuration() : absl::Milliseconds(500));
    in.coordinator.Start(outcome.setup_data, start_at);
    in.state.phase = 2;
    if (in.plan.embedded) test_start = start_at;
    ScenarioLoop(in, outcome, start_at).Run(test_start);
    ReportLostAgents(in.coordinator, outcome, "; the metrics it sent are kept");
    RunTeardown(in, outcome);
  }
  ReportLostAgents(in.coordinator, outcome, "");
  // Everything the agents sent came before their Done (or their loss):
  // written, and the files finished (gzip included), whatever ended the run.
  in.outputs.Close();
  outcome.test_duration = absl::Now() - test_start;
  if (!in.flags.quiet) {
    PrintFinalProgress(outcome.test_duration, in.coordinator.Progress(), in.prepared.scenarios,
                       in.plan.embedded ? 0 : in.plan.count);
  }
  return outcome;
}

}  // namespace barrage::cli
