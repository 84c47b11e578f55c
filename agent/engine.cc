#include "agent/engine.h"

#include <algorithm>
#include <thread>

#include "common/metrics/histogram.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "common/log.h"

namespace barrage::agent {
namespace {

double MillisSince(absl::Time t0) { return absl::ToDoubleMilliseconds(absl::Now() - t0); }

}  // namespace

struct Engine::ScenarioRun {
  const Scenario* scenario = nullptr;
  ScenarioShare share;            // what this instance runs of it
  std::vector<Vu*> vus;           // guarded by mu_ once started
  absl::Time start;               // the scenario's own start (test start + startTime)
  absl::Time regular_end;         // duration, maxDuration or the stages end here
  absl::Time hard_end;            // + gracefulStop: running iterations are cut
  bool started = false;           // main loop only
  bool released = false;          // main loop only: its VUs went back to the pool
  std::atomic<int64_t> next_shared{0};      // shared-iterations pool
  std::atomic<int64_t> next_iteration{0};   // the scenario's local iteration numbers
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> active{0};           // its VUs inside an iteration loop
  std::atomic<int64_t> dropped{0};
  int remaining = 0;              // VU loops (or the dispatcher) still running; guarded by mu_
  bool interrupted = false;       // guarded by mu_
  // Arrival-rate executors only.
  std::mutex pool_mu;
  std::vector<Vu*> idle;          // guarded by pool_mu
  metrics::Histogram start_delay_ms;  // guarded by pool_mu
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> making_vu{false};
  int64_t made = 0;               // dispatcher thread only
  bool warned_max = false;        // dispatcher thread only
  std::thread dispatcher;
  // ramping-vus only: which VUs are inside an iteration (set by the VUs) and
  // since when one has been above the planned count (main loop only).
  std::unique_ptr<std::atomic<bool>[]> iterating;
  std::vector<absl::Time> over_since;
};

Engine::Engine(EngineConfig config) : config_(std::move(config)), pool_(config_.threads) {
  for (const auto& [name, def] : std::map<std::string, metrics::MetricDef>{
           {"vus", {"vus", metrics::MetricType::kGauge, metrics::ValueType::kDefault}},
           {"vus_max", {"vus_max", metrics::MetricType::kGauge, metrics::ValueType::kDefault}},
           {"dropped_iterations", {"dropped_iterations", metrics::MetricType::kCounter, metrics::ValueType::kDefault}}}) {
    (void)DefineMetric(def);
  }
}

Engine::~Engine() {
  Stop();
  // Interrupted VUs finish their task soon: sleeps return at once and calls
  // end by their deadline. Wait for them, bounded; a VU still busy after
  // that (a script stuck in a busy loop, a call that ignores its deadline)
  // is leaked on purpose rather than destroyed under its own stack.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (auto& vu : vus_) {
    while (vu->busy() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    if (vu->busy()) {
      barrage::Log(Severity::kWarning, absl::StrCat("VU ", vu->id(), " did not stop in time; leaving it behind"));
      (void)vu.release();
    }
  }
  // VUs go before the pool's threads stop: their runtimes free gRPC state.
  vus_.clear();
}

int64_t Engine::planned_vus() const {
  return PeakVus(config_.scenarios, config_.execution, /*max_possible=*/false);
}

absl::StatusOr<std::unique_ptr<js::Runtime>> Engine::MakeRuntime(Vu& vu) {
  js::RuntimeConfig rc;
  rc.vu_id = vu.id();
  rc.env = config_.env;
  rc.host = &vu;
  rc.bundle = config_.bundle;
  rc.throw_on_bad_metric_value = config_.throw_on_bad_metric_value;
  rc.test_options_json = config_.options_json;
  rc.options = config_.options;
  return js::Runtime::Create(std::move(rc));
}

absl::Status Engine::DefineMetric(const metrics::MetricDef& def) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = defs_.find(def.name);
  if (it != defs_.end()) {
    if (it->second == def) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat("metric '", def.name, "' already exists but with type ",
                                                 std::string(metrics::MetricTypeName(it->second.type))));
  }
  absl::Status st = pool_.Define(def);
  if (st.ok()) defs_[def.name] = def;
  return st;
}

void Engine::AbortTest(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!abort_reason_) abort_reason_ = reason;
  }
  Stop();
}

std::optional<std::string> Engine::abort_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return abort_reason_;
}

void Engine::Stop() {
  stopped_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& vu : vus_) vu->Interrupt();
  cv_.notify_all();
}

bool Engine::HasExport(const std::string& name) const {
  return std::find(exports_.begin(), exports_.end(), name) != exports_.end();
}

absl::Status Engine::InitFailure(const Vu& vu, const absl::Status& error) const {
  // k6's scheduler: the error as it is, with the hint "error while
  // initializing VU #<id in test>", plus " (script exception)" for an
  // exception; exec.test.abort() there is an abort (exit 108), not an error.
  std::string hint = absl::StrCat("error while initializing VU #", VuIdInTest(config_.execution, vu.id()));
  absl::Status out;
  if (abort_reason_) {
    out = absl::AbortedError(*abort_reason_);
  } else {
    out = absl::Status(error.code(), error.message());
    if (error.code() == absl::StatusCode::kInvalidArgument) absl::StrAppend(&hint, " (script exception)");
  }
  out.SetPayload(kInitFailureHint, absl::Cord(hint));
  return out;
}

std::string InitFailureHint(const absl::Status& status) {
  auto hint = status.GetPayload(kInitFailureHint);  // absl::optional in Debian's abseil
  return hint ? std::string(*hint) : std::string();
}

absl::StatusOr<std::vector<Vu*>> Engine::MakeVus(int64_t n) {
  std::vector<Vu*> made;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = next_vu_id_++;
      vus_.push_back(std::make_unique<Vu>(id, pool_.worker(static_cast<int>((id - 1) % pool_.size())), *this));
      made.push_back(vus_.back().get());
    }
  }
  int64_t pending = n;
  absl::Status first_error;
  // The error of a VU cut short by another's failure (exec.test.abort()
  // stops every VU) only counts when no VU has one of its own: the
  // report names the VU that failed, not one that was interrupted first.
  absl::Status first_interrupted_error;
  for (Vu* vu : made) {
    vu->Start([this, vu, &pending, &first_error, &first_interrupted_error] {
      absl::StatusOr<std::unique_ptr<js::Runtime>> rt = MakeRuntime(*vu);
      std::vector<std::string> exports;
      if (rt.ok()) {
        if (vu->id() == 1) exports = (*rt)->ExportedFunctions();
        vu->set_runtime(*std::move(rt));
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (!rt.ok()) {
        absl::Status& slot = vu->Interrupted() && !vu->aborted_test() ? first_interrupted_error : first_error;
        if (slot.ok()) slot = InitFailure(*vu, rt.status());
      }
      if (vu->id() == 1) exports_ = std::move(exports);
      if (--pending == 0) cv_.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return pending == 0; });
  if (!first_error.ok()) return first_error;
  if (!first_interrupted_error.ok()) return first_interrupted_error;
  vus_max_ += n;
  return made;
}

absl::Status Engine::InitVus() {
  absl::StatusOr<std::vector<Vu*>> made = MakeVus(planned_vus());
  if (!made.ok()) return made.status();
  std::lock_guard<std::mutex> lock(mu_);
  idle_vus_ = *made;
  return absl::OkStatus();
}

std::vector<Vu*> Engine::AcquireVus(int64_t n, std::unique_lock<std::mutex>& lock) {
  std::vector<Vu*> out;
  // Lowest ids first, so a scenario's VUs are numbered from 1 up where it can.
  std::sort(idle_vus_.begin(), idle_vus_.end(), [](const Vu* a, const Vu* b) { return a->id() > b->id(); });
  while (static_cast<int64_t>(out.size()) < n && !idle_vus_.empty()) {
    out.push_back(idle_vus_.back());
    idle_vus_.pop_back();
  }
  const int64_t missing = n - static_cast<int64_t>(out.size());
  if (missing > 0) {
    // The pool is sized for the planned overlap, so this happens only when a
    // scenario's VUs are still finishing interrupted iterations as the next
    // one starts. Made here rather than making the next scenario wait.
    lock.unlock();
    barrage::Log(Severity::kDebug, absl::StrCat("initializing ", missing, " more VUs for a starting scenario"));
    absl::StatusOr<std::vector<Vu*>> made = MakeVus(missing);
    lock.lock();
    if (made.ok()) {
      out.insert(out.end(), made->begin(), made->end());
    } else {
      barrage::Log(Severity::kError, made.status().message());
    }
  }
  return out;
}

absl::StatusOr<std::optional<std::string>> Engine::RunLifecycle(
    const std::string& fn, const std::optional<std::string>& data, absl::Duration timeout, bool want_result,
    const std::pair<std::string, std::string>* summary_text) {
  std::optional<std::pair<std::string, std::string>> texts;
  if (summary_text != nullptr) texts = *summary_text;
  int64_t unset = 0;
  test_start_ns_.compare_exchange_strong(unset, absl::ToUnixNanos(absl::Now()));
  // A VU of its own (__VU 0), kept until the engine goes: on a timeout its
  // coroutine may still be running.
  Vu* vu;
  {
    std::lock_guard<std::mutex> lock(mu_);
    vus_.push_back(std::make_unique<Vu>(0, pool_.worker(0), *this));
    vu = vus_.back().get();
  }
  struct Outcome {
    bool done = false;
    absl::StatusOr<std::optional<std::string>> result = std::optional<std::string>();
  };
  auto outcome = std::make_shared<Outcome>();
  vu->Start([this, vu, fn, data, want_result, outcome, texts] {
    absl::StatusOr<std::optional<std::string>> result = std::optional<std::string>();
    absl::StatusOr<std::unique_ptr<js::Runtime>> rt = MakeRuntime(*vu);  // __VU 0: its id
    if (!rt.ok()) {
      result = rt.status();
    } else {
      metrics::TagSet tags = config_.test_tags;
      (*rt)->set_vu_tags(tags);
      (*rt)->set_group("::" + fn);
      if (texts) (*rt)->SetSummaryText(texts->first, texts->second);
      absl::StatusOr<std::string> r = (*rt)->Call(fn, data, want_result);
      if (!r.ok()) {
        result = r.status();
      } else if (!r->empty()) {
        result = std::optional<std::string>(*r);
      }
      auto [sent, received] = (*rt)->TakeDataCounters();
      (*rt)->EmitSample("data_sent", static_cast<double>(sent), nullptr);
      (*rt)->EmitSample("data_received", static_cast<double>(received), nullptr);
      vu->set_runtime(*std::move(rt));
    }
    std::lock_guard<std::mutex> lock(mu_);
    outcome->result = std::move(result);
    outcome->done = true;
    cv_.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] { return outcome->done; })) {
    vu->Interrupt();
    return absl::DeadlineExceededError(absl::StrCat(fn, "() execution timed out after ", FormatGoDuration(timeout)));
  }
  return outcome->result;
}

absl::StatusOr<std::optional<std::string>> Engine::RunSetup(absl::Duration timeout) {
  return RunLifecycle("setup", std::nullopt, timeout, /*want_result=*/true);
}

absl::Status Engine::RunTeardown(const std::optional<std::string>& data, absl::Duration timeout) {
  return RunLifecycle("teardown", data, timeout, /*want_result=*/false).status();
}

absl::StatusOr<std::optional<std::string>> Engine::RunHandleSummary(const std::string& data, const std::string& text,
                                                                    const std::string& text_color,
                                                                    absl::Duration timeout) {
  const std::pair<std::string, std::string> texts(text, text_color);
  return RunLifecycle("handleSummary", data, timeout, /*want_result=*/true, &texts);
}

void Engine::EnterScenario(Vu& vu, ScenarioRun& run) {
  const Scenario& s = *run.scenario;
  js::Runtime* rt = vu.runtime();
  metrics::TagSet tags = config_.test_tags;
  for (const auto& [k, v] : s.tags) tags[k] = v;
  if (rt->system_tag("scenario")) tags["scenario"] = s.name;
  rt->set_vu_tags(tags);
  rt->set_scenario_env(s.env);
  rt->set_group("");
  VuScenarioState& state = vu.scenario_state();
  state.run = &run;
  state.id_in_test = VuIdInTest(config_.execution, vu.id());
  state.iteration_in_scenario = 0;
}

bool Engine::RunIteration(Vu& vu, ScenarioRun& run, const std::optional<std::string>& data,
                          int64_t scenario_iteration, int64_t iteration_in_test) {
  const Scenario& s = *run.scenario;
  js::Runtime* rt = vu.runtime();
  VuScenarioState& state = vu.scenario_state();
  state.scenario_iteration = scenario_iteration;
  state.scenario_iteration_in_test = iteration_in_test;
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> r = rt->Call(s.exec, data);
  rt->set_group("");
  state.iteration_in_scenario++;
  // The VU's tags now: the script may have changed them (exec.vu.tags),
  // with the group "" (set above).
  Vu::IterationSeries& series = vu.iteration_series();
  if (series.tags_epoch != rt->tags_epoch()) {
    const std::string encoded = rt->EncodeTags(nullptr);
    series.tags_epoch = rt->tags_epoch();
    series.data_sent = metrics::SeriesRef("data_sent", encoded);
    series.data_received = metrics::SeriesRef("data_received", encoded);
    series.iterations = metrics::SeriesRef("iterations", encoded);
    series.iteration_duration = metrics::SeriesRef("iteration_duration", encoded);
  }
  auto [sent, received] = rt->TakeDataCounters();
  // Bytes moved count even when the iteration is cut short (k6 emits its
  // I/O samples for every iteration; iterations and iteration_duration only
  // for complete ones).
  vu.EmitSeries(series.data_sent, static_cast<double>(sent));
  vu.EmitSeries(series.data_received, static_cast<double>(received));
  if ((vu.Interrupted() || stopped_) && (!r.ok() || vu.Interrupted())) {
    // Cut short by gracefulStop, gracefulRampDown or an abort.
    rt->set_iteration(rt->iteration() + 1);
    iterations_interrupted_++;
    return false;
  }
  if (!r.ok()) {
    barrage::Log(Severity::kError, r.status().message(),
                 {{"executor", s.executor}, {"scenario", s.name}, {"source", "stacktrace"}});
  }
  vu.EmitSeries(series.iterations, 1);
  vu.EmitSeries(series.iteration_duration, MillisSince(t0));
  // __ITER counts every iteration the VU began, as k6's does; moved on
  // after the iteration's own samples, which carry its number as k6's
  // "iter" metadata.
  rt->set_iteration(rt->iteration() + 1);
  iterations_completed_++;
  run.completed++;
  // minIterationDuration: a complete iteration shorter than it is padded
  // after its samples (iteration_duration leaves the padding out), with a
  // sleep the end of the VU context cuts short, as in k6.
  if (config_.options && config_.options->min_iteration_duration) {
    const absl::Duration rest = *config_.options->min_iteration_duration - (absl::Now() - t0);
    if (rest > absl::ZeroDuration() && !vu.Interrupted()) vu.Sleep(rest);
  }
  return true;
}

void Engine::RunRampingVuLoop(Vu& vu, ScenarioRun& run, int64_t k, const std::optional<std::string>& data) {
  const Scenario& s = *run.scenario;
  EnterScenario(vu, run);
  const size_t idx = static_cast<size_t>(std::find(run.share.global_vus.begin(), run.share.global_vus.end(), k) -
                                         run.share.global_vus.begin());
  bool active = false;
  while (!stopped_) {
    const absl::Time now = absl::Now();
    if (now >= run.regular_end) break;
    if (s.PlannedVus(now - run.start) < k) {
      if (active) {
        active = false;
        vus_active_--;
        run.active--;
      }
      // Waiting to be needed: the planned count moves in steps, so a short
      // poll keeps the curve within one VU of the plan.
      vu.ClearInterrupt();
      vu.Sleep(std::min(absl::Milliseconds(10), run.regular_end - now));
      continue;
    }
    if (!active) {
      active = true;
      vus_active_++;
      run.active++;
    }
    run.iterating[idx] = true;
    const int64_t n = run.next_iteration++;
    const bool completed = RunIteration(vu, run, data, n, run.share.IterationInTest(n));
    run.iterating[idx] = false;
    if (!completed) {
      // Interrupted: by ramp-down (the VU may be needed again later) or by
      // the end of the scenario.
      if (stopped_ || absl::Now() >= run.regular_end) break;
      vu.ClearInterrupt();
    }
  }
  if (active) {
    vus_active_--;
    run.active--;
  }
}

void Engine::RunVuLoop(Vu& vu, ScenarioRun& run, const std::optional<std::string>& data) {
  const Scenario& s = *run.scenario;
  EnterScenario(vu, run);
  vus_active_++;
  run.active++;
  int64_t local_iterations = 0;
  while (!vu.Interrupted() && !stopped_) {
    const absl::Time now = absl::Now();
    int64_t n;
    if (s.executor == "constant-vus") {
      if (now >= run.regular_end) break;
      n = run.next_iteration++;
    } else if (s.executor == "shared-iterations") {
      if (now >= run.regular_end) break;
      n = run.next_shared.fetch_add(1);
      if (n >= run.share.iterations) break;
    } else {  // per-vu-iterations
      if (local_iterations >= run.share.iterations) break;
      if (now >= run.regular_end) {
        run.dropped += run.share.iterations - local_iterations;
        break;
      }
      n = run.next_iteration++;
    }
    ++local_iterations;
    if (!RunIteration(vu, run, data, n, run.share.IterationInTest(n))) break;
  }
  vus_active_--;
  run.active--;
}

void Engine::StartRun(ScenarioRun& run, const std::optional<std::string>& data, std::unique_lock<std::mutex>& lock) {
  const Scenario& s = *run.scenario;
  run.started = true;
  run.vus = AcquireVus(run.share.vus, lock);
  ScenarioRun* r = &run;
  if (s.IsArrivalRate()) {
    run.idle = run.vus;
    run.made = static_cast<int64_t>(run.vus.size());
    run.remaining = 1;  // the dispatcher
    run.dispatcher = std::thread([this, r, &data] { DispatchArrivals(*r, data); });
    return;
  }
  if (s.IsRampingVus()) {
    run.iterating = std::make_unique<std::atomic<bool>[]>(run.vus.size());
    run.over_since.assign(run.vus.size(), absl::InfinitePast());
  }
  run.remaining = static_cast<int>(run.vus.size());
  for (size_t i = 0; i < run.vus.size(); ++i) {
    Vu* vu = run.vus[i];
    vu->Start([this, vu, r, i, &data] {
      if (r->scenario->IsRampingVus()) {
        RunRampingVuLoop(*vu, *r, r->share.global_vus[i], data);
      } else {
        RunVuLoop(*vu, *r, data);
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (--r->remaining == 0) cv_.notify_all();
    });
  }
}

void Engine::Run(const std::optional<std::string>& setup_data) {
  const absl::Time test_start = absl::Now();
  int64_t unset = 0;
  test_start_ns_.compare_exchange_strong(unset, absl::ToUnixNanos(test_start));
  std::unique_lock<std::mutex> lock(mu_);  // Progress() reads runs_
  for (const Scenario& s : config_.scenarios) {
    auto run = std::make_unique<ScenarioRun>();
    run->scenario = &s;
    run->share = ShareOf(s, config_.execution);
    run->start = test_start + s.start_time;
    run->regular_end = run->start + s.RegularDuration();
    run->hard_end = run->regular_end + s.graceful_stop;
    if (!run->share.has_work) {
      barrage::Log(Severity::kDebug, absl::StrCat("scenario ", s.name, " has no work on this execution segment"));
      run->started = run->released = true;
    }
    runs_.push_back(std::move(run));
  }
  for (;;) {
    bool all_done = true;
    absl::Time now = absl::Now();
    absl::Time next_start = now + absl::Milliseconds(50);
    for (auto& run : runs_) {
      if (run->released) continue;
      all_done = false;
      if (!run->started) {
        if (stopped_) {
          run->started = run->released = true;  // never begun
          continue;
        }
        if (now < run->start) {
          next_start = std::min(next_start, run->start);
          continue;
        }
        StartRun(*run, setup_data, lock);
        now = absl::Now();
      }
      if (run->remaining == 0) {
        // Finished: its VUs go back to the pool for later scenarios.
        if (run->dispatcher.joinable()) {
          lock.unlock();
          run->dispatcher.join();
          lock.lock();
        }
        for (Vu* vu : run->vus) {
          vu->ClearInterrupt();
          idle_vus_.push_back(vu);
        }
        run->released = true;
        continue;
      }
      if ((now >= run->hard_end || stopped_) && !run->interrupted) {
        run->interrupted = true;
        for (Vu* vu : run->vus) vu->Interrupt();
      }
      const Scenario& rs = *run->scenario;
      if (rs.IsRampingVus() && !run->interrupted && now >= run->start && now < run->regular_end) {
        // Ramp-down: VUs above the planned count start no new iteration
        // (their loop sees to that) and get gracefulRampDown to finish the
        // current one.
        const int64_t planned = rs.PlannedVus(now - run->start);
        for (size_t idx = 0; idx < run->vus.size(); ++idx) {
          if (run->share.global_vus[idx] <= planned || !run->iterating[idx]) {
            run->over_since[idx] = absl::InfinitePast();
          } else if (run->over_since[idx] == absl::InfinitePast()) {
            run->over_since[idx] = now;
          } else if (run->over_since[idx] != absl::InfiniteFuture() &&
                     now - run->over_since[idx] >= rs.graceful_ramp_down) {
            run->over_since[idx] = absl::InfiniteFuture();  // once
            run->vus[idx]->Interrupt();
          }
        }
      }
    }
    if (all_done) break;
    cv_.wait_for(lock, absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), next_start - now)));
  }
  lock.unlock();
  // Iterations the executors had no time left for (spec §2.2).
  for (auto& run : runs_) {
    const Scenario& s = *run->scenario;
    int64_t dropped = run->dropped;
    if (s.executor == "shared-iterations" && run->share.has_work) {
      dropped = std::max<int64_t>(0, run->share.iterations - std::min<int64_t>(run->next_shared, run->share.iterations));
    }
    if (dropped > 0 && !stopped_) {
      metrics::TagSet tags = config_.test_tags;
      if (SystemTagEnabled("scenario")) tags["scenario"] = s.name;
      pool_.worker(0).Emit("dropped_iterations", metrics::EncodeTagSet(tags), static_cast<double>(dropped),
                           absl::ToUnixNanos(absl::Now()));
    }
  }
}

bool Engine::SystemTagEnabled(const std::string& tag) const {
  const std::vector<std::string> tags = config_.options ? config_.options->SystemTags() : DefaultSystemTags();
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

double Engine::Progress(const ScenarioRun& run) const {
  const Scenario& s = *run.scenario;
  if (s.executor == "shared-iterations" || s.executor == "per-vu-iterations") {
    const int64_t total =
        s.executor == "shared-iterations" ? run.share.iterations : run.share.iterations * run.share.vus;
    return total > 0 ? std::min(1.0, static_cast<double>(run.completed) / static_cast<double>(total)) : 1.0;
  }
  const absl::Duration length = s.RegularDuration();
  if (length <= absl::ZeroDuration()) return 1.0;
  return std::clamp(absl::FDivDuration(absl::Now() - run.start, length), 0.0, 1.0);
}

js::ExecutionInfo Engine::Execution(const Vu& vu) {
  js::ExecutionInfo info;
  const VuScenarioState& state = vu.scenario_state();
  info.vu_id_in_test = vu.id() == 0 ? 0 : VuIdInTest(config_.execution, vu.id());
  if (state.run != nullptr) {
    const auto& run = *static_cast<const ScenarioRun*>(state.run);
    info.in_scenario = true;
    info.vu_id_in_test = state.id_in_test;
    info.vu_iteration_in_scenario = state.iteration_in_scenario;
    info.scenario_name = run.scenario->name;
    info.executor = run.scenario->executor;
    info.scenario_start_unix_ms = static_cast<double>(absl::ToUnixMillis(run.start));
    info.scenario_progress = Progress(run);
    info.scenario_iteration_in_instance = state.scenario_iteration;
    info.scenario_iteration_in_test = state.scenario_iteration_in_test;
  }
  info.iterations_completed = iterations_completed_;
  info.iterations_interrupted = iterations_interrupted_;
  info.vus_active = vus_active_;
  info.vus_initialized = vus_max_;
  const int64_t start = test_start_ns_;
  info.test_run_duration_ms = start == 0 ? 0 : static_cast<double>(absl::ToUnixNanos(absl::Now()) - start) / 1e6;
  return info;
}

absl::Status Engine::Collect(metrics::MetricStore& into, bool sample_vus) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, def] : defs_) {
      absl::Status st = into.Define(def);
      if (!st.ok()) return st;
    }
  }
  // After the VUs have stopped, a sample of 0 would become the gauge's last
  // value; k6 shows the VUs of the running test, so none is taken then.
  if (config_.emit_vus_gauges && ((sample_vus && (vus_active_.load() > 0 || !vus_sampled_)) || !vus_sampled_)) {
    vus_sampled_ = true;
    const std::string tags = metrics::EncodeTagSet(config_.test_tags);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    pool_.worker(0).Emit("vus", tags, static_cast<double>(vus_active_.load()), now);
    pool_.worker(0).Emit("vus_max", tags, static_cast<double>(vus_max_.load()), now);
  }
  return pool_.DrainInto(into);
}

std::map<std::string, metrics::MetricDef> Engine::Definitions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return defs_;
}

std::vector<RawSampleBatch> Engine::TakeRawSamples() {
  std::vector<RawSampleBatch> out;
  for (int i = 0; i < pool_.size(); ++i) out.push_back(pool_.worker(i).TakeRawSamples());
  return out;
}

void Engine::AddArrivalVu(ScenarioRun& run) {
  const Scenario& s = *run.scenario;
  if (run.made >= run.share.max_vus) {
    if (!run.warned_max) {
      run.warned_max = true;
      barrage::Log(Severity::kWarning,
                   absl::StrCat("Insufficient VUs, reached ", run.share.max_vus, " active VUs and cannot initialize more"),
                   {{"executor", s.executor}, {"scenario", s.name}});
    }
    return;
  }
  // One VU at a time, in the background, as k6 does.
  if (run.making_vu.exchange(true)) return;
  run.made++;
  {
    // An initialised VU that no running scenario holds comes first.
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_vus_.empty()) {
      Vu* vu = idle_vus_.back();
      idle_vus_.pop_back();
      run.vus.push_back(vu);
      std::lock_guard<std::mutex> pool_lock(run.pool_mu);
      run.idle.push_back(vu);
      run.making_vu = false;
      return;
    }
  }
  const int64_t id = next_vu_id_++;
  Vu* vu;
  {
    std::lock_guard<std::mutex> lock(mu_);
    vus_.push_back(std::make_unique<Vu>(id, pool_.worker(static_cast<int>((id - 1) % pool_.size())), *this));
    vu = vus_.back().get();
    run.vus.push_back(vu);
  }
  vus_max_++;
  vu->Start([this, vu, &run] {
    absl::StatusOr<std::unique_ptr<js::Runtime>> rt = MakeRuntime(*vu);
    if (!rt.ok()) {
      std::unique_lock<std::mutex> lock(mu_);
      const absl::Status failure = InitFailure(*vu, rt.status());
      lock.unlock();
      barrage::Log(Severity::kError, failure.message(), {{"hint", InitFailureHint(failure)}});
      // A VU without a runtime must never run an iteration: out of the
      // scenario, and not counted as initialised.
      lock.lock();
      run.vus.erase(std::find(run.vus.begin(), run.vus.end(), vu));
      vus_max_--;
    } else {
      vu->set_runtime(*std::move(rt));
      std::lock_guard<std::mutex> lock(run.pool_mu);
      run.idle.push_back(vu);
    }
    run.making_vu = false;
  });
}

void Engine::DispatchArrivals(ScenarioRun& run, const std::optional<std::string>& data) {
  const Scenario& s = *run.scenario;
  const absl::Duration length = s.RegularDuration();
  int64_t started = 0;
  int64_t late = 0;  // more than 10 ms after their time
  // Absolute schedule: global iteration k is due at start + offset(k)
  // whatever happened before, so a late start never shifts the ones after
  // it. This instance runs the k its segment owns (spec §3.9).
  for (int64_t k = 0;; ++k) {
    const absl::Duration offset = s.ArrivalOffset(k);
    // constant-arrival-rate starts at 0 and stops short of the end;
    // ramping-arrival-rate's k-th start is where the rate's integral reaches
    // k, so its last one falls exactly on the end (spec §3.7.4).
    if (s.IsConstantArrivalRate() ? offset >= length : offset > length) break;
    if (stopped_) break;
    if (!run.share.iterations_striping.Owns(run.share.iterations_index, k)) continue;
    const absl::Time due = run.start + offset;
    if (due > absl::Now()) {
      // Waits on the engine's condition so that Stop() wakes it at once,
      // however far away the next arrival is.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, absl::ToChronoTime(due), [&] { return stopped_.load(); });
    }
    if (stopped_) break;
    Vu* vu = nullptr;
    {
      std::lock_guard<std::mutex> lock(run.pool_mu);
      if (!run.idle.empty()) {
        vu = run.idle.back();
        run.idle.pop_back();
      }
    }
    if (vu == nullptr) {
      run.dropped++;  // never queued: a late iteration is a dropped one
      AddArrivalVu(run);
      continue;
    }
    const int64_t n = started++;
    run.in_flight++;
    vu->Start([this, vu, &run, &data, due, n, k, &late] {
      const double delay_ms = absl::ToDoubleMilliseconds(absl::Now() - due);
      vus_active_++;
      run.active++;
      if (vu->scenario_state().run != &run) EnterScenario(*vu, run);
      const bool completed = RunIteration(*vu, run, data, n, k);
      vus_active_--;
      run.active--;
      {
        std::lock_guard<std::mutex> lock(run.pool_mu);
        run.start_delay_ms.Add(delay_ms);
        if (delay_ms > 10) late++;
        if (completed) run.idle.push_back(vu);
      }
      run.in_flight--;
    });
  }
  // In-flight iterations finish, or the main loop interrupts them at the
  // hard end (gracefulStop).
  while (run.in_flight > 0 || run.making_vu) absl::SleepFor(absl::Milliseconds(2));
  {
    std::lock_guard<std::mutex> lock(run.pool_mu);
    const metrics::Histogram& h = run.start_delay_ms;
    const std::string line =
        absl::StrFormat("scenario %s: %d iterations started, %d dropped; start delay p50=%.3fms p99=%.3fms max=%.3fms",
                        s.name, h.count(), run.dropped.load(), h.Quantile(0.5), h.Quantile(0.99), h.max());
    // Late starts are shown (the iteration ran, but not at its time).
    if (late > 0) {
      barrage::Log(Severity::kWarning, absl::StrCat(line, "; ", late, " started more than 10ms late"));
    } else {
      barrage::Log(Severity::kDebug, line);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (--run.remaining == 0) cv_.notify_all();
}

EngineProgress Engine::Progress() const {
  EngineProgress p{vus_active_.load(), vus_max_.load(), iterations_completed_.load(), iterations_interrupted_.load(), {}};
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& run : runs_) {
    if (!run->share.has_work) continue;
    p.scenarios.push_back({run->scenario->name, run->active.load(), run->completed.load(),
                           run->started ? Progress(*run) : 0.0, run->released});
  }
  return p;
}

}  // namespace barrage::agent
