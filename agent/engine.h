// Runs a test's share on this process: creates the VUs, runs setup, the
// scenarios' executors and teardown, and hands out the samples. The embedded
// mode of `barrage run` drives it directly; the agent daemon will drive it
// from the control plane (TODO(#5)).
//
// Every k6 executor (spec §3.7.4), each on this instance's execution segment
// (spec §3.9, common/scenario_share.h). Scenarios start at their startTime
// and run side by side; VUs come from one pool sized for the most that run
// at once, so scenarios that do not overlap reuse them.
//
// Threads: the public methods are called from one controlling thread; VUs
// run on the WorkerPool; arrival-rate scenarios have a dispatcher thread.
#ifndef BARRAGE_AGENT_ENGINE_H_
#define BARRAGE_AGENT_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/js/bundle.h"
#include "agent/vu.h"
#include "agent/worker_pool.h"
#include "common/execution_segment.h"
#include "common/options.h"
#include "common/scenario_share.h"

namespace barrage::agent {

// A VU's init context failed (Engine::InitVus and the VUs made while a test
// runs): the status carries k6's hint ("error while initializing VU #2
// (script exception)") under this payload key; kAborted when the script
// called exec.test.abort() there.
inline constexpr char kInitFailureHint[] = "barrage.dev/init-failure-hint";
std::string InitFailureHint(const absl::Status& status);

struct EngineConfig {
  std::shared_ptr<const js::Bundle> bundle;
  std::vector<Scenario> scenarios;
  std::map<std::string, std::string> env;
  metrics::TagSet test_tags;
  bool throw_on_bad_metric_value = false;
  int threads = 0;  // workers; 0 = number of cores
  ExecutionTuple execution;  // this instance's segment; the whole by default
  std::string options_json = "{}";  // exec.test.options
  // The consolidated options: systemTags, minIterationDuration, and what
  // the modules apply (userAgent, TLS). Null: k6's defaults.
  std::shared_ptr<const Options> options;
  // The vus and vus_max gauges. Off on agents of a distributed run: the
  // controller samples the sums over all agents itself.
  bool emit_vus_gauges = true;
};

struct ScenarioProgress {
  std::string name;
  int64_t vus_active = 0;
  int64_t iterations_completed = 0;
  double progress = 0;  // 0..1, as exec.scenario.progress
  bool done = false;
};

struct EngineProgress {
  int64_t vus_active = 0;
  int64_t vus_max = 0;
  int64_t iterations_completed = 0;
  int64_t iterations_interrupted = 0;
  std::vector<ScenarioProgress> scenarios;  // those with work on this instance
};

class Engine : public VuOwner {
 public:
  explicit Engine(EngineConfig config);
  ~Engine() override;

  // Creates the VUs the scenarios need at once at most (ids 1..N), each
  // running the init context from the bundle, spread over the workers. The
  // first failure is returned.
  absl::Status InitVus();
  int64_t planned_vus() const;
  // exec.test.fail() was called: the run ends with exit code 110.
  bool test_failed() const { return test_failed_; }

  // setup() on its own VU (__VU 0, group ::setup). Returns its result as
  // JSON (nullopt for undefined). kDeadlineExceeded past `timeout`; a script
  // error keeps its stack trace.
  absl::StatusOr<std::optional<std::string>> RunSetup(absl::Duration timeout);
  // teardown(data), likewise.
  absl::Status RunTeardown(const std::optional<std::string>& data, absl::Duration timeout);
  // handleSummary(data) with the default summary texts for textSummary();
  // its result as JSON (nullopt for undefined).
  absl::StatusOr<std::optional<std::string>> RunHandleSummary(const std::string& data, const std::string& text,
                                                             const std::string& text_color, absl::Duration timeout);
  bool HasExport(const std::string& name) const;

  // Runs every scenario to its end (gracefulStop included) or until Stop().
  // Blocks the calling thread.
  void Run(const std::optional<std::string>& setup_data);
  // Stops the scenarios at once (abort, abortOnFail): VUs are interrupted.
  void Stop();

  // Moves the samples gathered so far into `into`. With sample_vus, the
  // vus and vus_max gauges are sampled now too (the caller does so once a
  // second while the test runs, as k6 does); the final collection passes
  // false, so VUs stopping at the end do not become the gauges' last value,
  // unless no sample was taken at all.
  absl::Status Collect(metrics::MetricStore& into, bool sample_vus = true);
  // --out json/csv: every sample is kept as measured too, at most
  // max_pending per worker (Worker::KeepRawSamples). Before Run.
  void KeepRawSamples(size_t max_pending) { pool_.KeepRawSamples(max_pending); }
  // One batch per worker, each in the order its VUs measured them.
  std::vector<RawSampleBatch> TakeRawSamples();
  size_t raw_pending() const { return pool_.raw_pending(); }
  int threads() { return pool_.size(); }
  // Every metric defined so far (built-in and the script's).
  std::map<std::string, metrics::MetricDef> Definitions() const;
  EngineProgress Progress() const;

  // Set when the script called exec.test.abort().
  std::optional<std::string> abort_reason() const;

  // VuOwner
  absl::Status DefineMetric(const metrics::MetricDef& def) override;
  void AbortTest(const std::string& reason) override;
  void FailTest() override { test_failed_ = true; }
  js::ExecutionInfo Execution(const Vu& vu) override;

 private:
  struct ScenarioRun;
  // A VU's failed init as k6 reports it (kInitFailureHint). mu_ held.
  absl::Status InitFailure(const Vu& vu, const absl::Status& error) const;
  // The systemTags option (k6's default set when there are no options).
  bool SystemTagEnabled(const std::string& tag) const;
  absl::StatusOr<std::optional<std::string>> RunLifecycle(const std::string& fn, const std::optional<std::string>& data,
                                                          absl::Duration timeout, bool want_result,
                                                          const std::pair<std::string, std::string>* summary_text = nullptr);
  // Makes n more VUs and waits for their init contexts; they join vus_.
  absl::StatusOr<std::vector<Vu*>> MakeVus(int64_t n);
  // Takes n VUs from the idle pool (making more if it runs short) for a
  // scenario that starts now. Called with mu_ held by `lock`.
  std::vector<Vu*> AcquireVus(int64_t n, std::unique_lock<std::mutex>& lock);
  void StartRun(ScenarioRun& run, const std::optional<std::string>& data, std::unique_lock<std::mutex>& lock);
  // constant-vus, shared-iterations and per-vu-iterations.
  void RunVuLoop(Vu& vu, ScenarioRun& run, const std::optional<std::string>& data);
  // Arrival-rate executors: starts the global iterations this instance owns
  // at their absolute times (Scenario::ArrivalOffset) on an idle VU, or drops
  // one (dropped_iterations) when none is idle and asks for one more VU, up
  // to maxVUs. Runs on its own thread.
  void DispatchArrivals(ScenarioRun& run, const std::optional<std::string>& data);
  // ramping-vus: the VU playing global VU k (1-based) runs iterations while
  // the planned count is at least k; the main loop interrupts one that
  // overruns gracefulRampDown.
  void RunRampingVuLoop(Vu& vu, ScenarioRun& run, int64_t k, const std::optional<std::string>& data);
  void AddArrivalVu(ScenarioRun& run);
  // Gives the VU the scenario's tags, env and k6/execution state.
  void EnterScenario(Vu& vu, ScenarioRun& run);
  // One iteration; false when it was interrupted (not completed).
  // scenario_iteration: the scenario's local iteration number.
  bool RunIteration(Vu& vu, ScenarioRun& run, const std::optional<std::string>& data, int64_t scenario_iteration,
                    int64_t iteration_in_test);
  absl::StatusOr<std::unique_ptr<js::Runtime>> MakeRuntime(Vu& vu);
  double Progress(const ScenarioRun& run) const;

  EngineConfig config_;
  WorkerPool pool_;
  std::vector<std::string> exports_;
  std::vector<std::unique_ptr<Vu>> vus_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, metrics::MetricDef> defs_;
  std::optional<std::string> abort_reason_;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> vus_active_{0};
  std::atomic<int64_t> vus_max_{0};
  std::atomic<int64_t> iterations_completed_{0};
  std::atomic<int64_t> iterations_interrupted_{0};
  bool vus_sampled_ = false;  // controlling thread only
  std::vector<std::unique_ptr<ScenarioRun>> runs_;
  std::vector<Vu*> idle_vus_;  // guarded by mu_
  std::atomic<int64_t> next_vu_id_{1};
  std::atomic<bool> test_failed_{false};
  std::atomic<int64_t> test_start_ns_{0};  // setup or the first scenario; 0 before
};

}  // namespace barrage::agent

#endif  // BARRAGE_AGENT_ENGINE_H_
