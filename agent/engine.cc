#include "agent/engine.h"

#include <algorithm>
#include <thread>

#include "common/metrics/histogram.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "common/log.h"

namespace barrage::agent {
namespace {

double MillisSince(absl::Time t0) { return absl::ToDoubleMilliseconds(absl::Now() - t0); }

}  // namespace

struct Engine::ScenarioRun {
  const Scenario* scenario = nullptr;
  std::vector<Vu*> vus;
  absl::Time start;               // the scenario's own start (test start + startTime)
  absl::Time regular_end;         // duration or maxDuration ends here
  absl::Time hard_end;            // + gracefulStop: running iterations are cut
  std::atomic<int64_t> next_shared{0};  // shared-iterations pool
  std::atomic<int64_t> dropped{0};
  int remaining = 0;              // VU loops (or the dispatcher) still running; guarded by mu_
  bool interrupted = false;       // guarded by mu_
  // constant-arrival-rate only.
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
  int64_t n = 0;
  for (const Scenario& s : config_.scenarios) n += s.InitialVus();
  return n;
}

absl::StatusOr<std::unique_ptr<js::Runtime>> Engine::MakeRuntime(Vu& vu) {
  js::RuntimeConfig rc;
  rc.vu_id = vu.id();
  rc.env = config_.env;
  rc.host = &vu;
  rc.bundle = config_.bundle;
  rc.throw_on_bad_metric_value = config_.throw_on_bad_metric_value;
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

absl::Status Engine::InitVus() {
  const int64_t n = planned_vus();
  int pending = 0;
  absl::Status first_error;
  for (int64_t i = 1; i <= n; ++i) {
    vus_.push_back(std::make_unique<Vu>(i, pool_.worker(static_cast<int>((i - 1) % pool_.size())), *this));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending = static_cast<int>(n);
  }
  for (auto& owned : vus_) {
    Vu* vu = owned.get();
    vu->Start([this, vu, &pending, &first_error] {
      absl::StatusOr<std::unique_ptr<js::Runtime>> rt = MakeRuntime(*vu);
      std::vector<std::string> exports;
      if (rt.ok()) {
        if (vu->id() == 1) exports = (*rt)->ExportedFunctions();
        vu->set_runtime(*std::move(rt));
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (!rt.ok() && first_error.ok()) {
        first_error = absl::Status(rt.status().code(), absl::StrCat("VU ", vu->id(), " init: ", rt.status().message()));
      }
      if (vu->id() == 1) exports_ = std::move(exports);
      if (--pending == 0) cv_.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return pending == 0; });
  vus_max_ = n;
  next_vu_id_ = n + 1;
  return first_error;
}

absl::StatusOr<std::optional<std::string>> Engine::RunLifecycle(const std::string& fn,
                                                                const std::optional<std::string>& data,
                                                                absl::Duration timeout, bool want_result) {
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
  vu->Start([this, vu, fn, data, want_result, outcome] {
    js::RuntimeConfig rc;
    rc.vu_id = 0;
    rc.env = config_.env;
    rc.host = vu;
    rc.bundle = config_.bundle;
    rc.throw_on_bad_metric_value = config_.throw_on_bad_metric_value;
    absl::StatusOr<std::optional<std::string>> result = std::optional<std::string>();
    absl::StatusOr<std::unique_ptr<js::Runtime>> rt = js::Runtime::Create(std::move(rc));
    if (!rt.ok()) {
      result = rt.status();
    } else {
      metrics::TagSet tags = config_.test_tags;
      (*rt)->set_vu_tags(tags);
      (*rt)->set_group("::" + fn);
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

std::string Engine::EnterScenario(Vu& vu, const Scenario& s) {
  js::Runtime* rt = vu.runtime();
  metrics::TagSet tags = config_.test_tags;
  for (const auto& [k, v] : s.tags) tags[k] = v;
  tags["scenario"] = s.name;
  rt->set_vu_tags(tags);
  rt->set_group("");
  return rt->EncodeTags(nullptr);
}

bool Engine::RunIteration(Vu& vu, const Scenario& s, const std::optional<std::string>& data,
                          const std::string& encoded, absl::Time measured_from) {
  js::Runtime* rt = vu.runtime();
  const absl::Time t0 = measured_from == absl::InfinitePast() ? absl::Now() : measured_from;
  absl::StatusOr<std::string> r = rt->Call(s.exec, data);
  rt->set_group("");
  if (vu.Interrupted() || stopped_) {
    // Cut short by gracefulStop or an abort: not a completed iteration.
    if (!r.ok() || vu.Interrupted()) {
      iterations_interrupted_++;
      return false;
    }
  }
  if (!r.ok()) {
    barrage::Log(Severity::kError, r.status().message(),
                 {{"executor", s.executor}, {"scenario", s.name}, {"source", "stacktrace"}});
  }
  const double ms = MillisSince(t0);
  auto [sent, received] = rt->TakeDataCounters();
  vu.Emit("iterations", encoded, 1);
  vu.Emit("iteration_duration", encoded, ms);
  vu.Emit("data_sent", encoded, static_cast<double>(sent));
  vu.Emit("data_received", encoded, static_cast<double>(received));
  iterations_completed_++;
  rt->set_iteration(rt->iteration() + 1);
  return true;
}

void Engine::RunRampingVuLoop(Vu& vu, ScenarioRun& run, int64_t k, const std::optional<std::string>& data) {
  const Scenario& s = *run.scenario;
  vu.Sleep(run.start - absl::Now());
  const std::string encoded = EnterScenario(vu, s);
  bool active = false;
  while (!stopped_) {
    const absl::Time now = absl::Now();
    if (now >= run.regular_end) break;
    if (s.PlannedVus(now - run.start) < k) {
      if (active) {
        active = false;
        vus_active_--;
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
    }
    run.iterating[k - 1] = true;
    const bool completed = RunIteration(vu, s, data, encoded);
    run.iterating[k - 1] = false;
    if (!completed) {
      // Interrupted: by ramp-down (the VU may be needed again later) or by
      // the end of the scenario.
      if (stopped_ || absl::Now() >= run.regular_end) break;
      vu.ClearInterrupt();
    }
  }
  if (active) vus_active_--;
}

void Engine::RunVuLoop(Vu& vu, ScenarioRun& run, const std::optional<std::string>& data) {
  const Scenario& s = *run.scenario;
  vu.Sleep(run.start - absl::Now());
  const std::string encoded = EnterScenario(vu, s);
  vus_active_++;
  int64_t local_iterations = 0;
  while (!vu.Interrupted() && !stopped_) {
    const absl::Time now = absl::Now();
    if (s.executor == "constant-vus") {
      if (now >= run.regular_end) break;
    } else if (s.executor == "shared-iterations") {
      if (now >= run.regular_end) break;
      if (run.next_shared.fetch_add(1) >= s.iterations) break;
    } else {  // per-vu-iterations
      if (local_iterations >= s.iterations) break;
      if (now >= run.regular_end) {
        run.dropped += s.iterations - local_iterations;
        break;
      }
    }
    ++local_iterations;
    if (!RunIteration(vu, s, data, encoded)) break;
  }
  vus_active_--;
}

void Engine::Run(const std::optional<std::string>& setup_data) {
  const absl::Time test_start = absl::Now();
  size_t offset = 0;
  std::vector<std::pair<Vu*, ScenarioRun*>> starts;
  for (const Scenario& s : config_.scenarios) {
    auto run = std::make_unique<ScenarioRun>();
    run->scenario = &s;
    run->start = test_start + s.start_time;
    run->regular_end = run->start + (s.executor == "constant-vus" ? s.duration : s.max_duration);
    run->hard_end = run->regular_end + s.graceful_stop;
    for (int64_t i = 0; i < s.InitialVus() && offset < vus_.size(); ++i) {
      Vu* vu = vus_[offset++].get();
      if (vu->id() == 0) continue;
      run->vus.push_back(vu);
    }
    if (s.IsRampingVus()) {
      run->regular_end = run->start + s.StagesDuration();
      run->hard_end = run->regular_end + s.graceful_stop;
      run->iterating = std::make_unique<std::atomic<bool>[]>(run->vus.size());
      run->over_since.assign(run->vus.size(), absl::InfinitePast());
    }
    if (s.IsArrivalRate()) {
      run->regular_end = run->start + s.duration;
      run->hard_end = run->regular_end + s.graceful_stop;
      run->idle = run->vus;
      run->made = static_cast<int64_t>(run->vus.size());
      run->remaining = 1;  // the dispatcher
    } else {
      run->remaining = static_cast<int>(run->vus.size());
    }
    runs_.push_back(std::move(run));
  }
  for (auto& run : runs_) {
    ScenarioRun* r = run.get();
    if (r->scenario->IsArrivalRate()) {
      r->dispatcher = std::thread([this, r, &setup_data] { DispatchArrivals(*r, setup_data); });
      continue;
    }
    for (size_t i = 0; i < r->vus.size(); ++i) {
      Vu* vu = r->vus[i];
      vu->Start([this, vu, r, i, &setup_data] {
        if (r->scenario->IsRampingVus()) {
          RunRampingVuLoop(*vu, *r, static_cast<int64_t>(i) + 1, setup_data);
        } else {
          RunVuLoop(*vu, *r, setup_data);
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (--r->remaining == 0) cv_.notify_all();
      });
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    bool all_done = true;
    const absl::Time now = absl::Now();
    for (auto& run : runs_) {
      if (run->remaining == 0) continue;
      all_done = false;
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
          if (static_cast<int64_t>(idx) < planned || !run->iterating[idx]) {
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
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  lock.unlock();
  for (auto& run : runs_) {
    if (run->dispatcher.joinable()) run->dispatcher.join();
  }
  // Iterations the executors had no time left for (spec §2.2).
  for (auto& run : runs_) {
    const Scenario& s = *run->scenario;
    int64_t dropped = run->dropped;
    if (s.executor == "shared-iterations") {
      dropped = std::max<int64_t>(0, s.iterations - std::min<int64_t>(run->next_shared, s.iterations));
    }
    if (dropped > 0 && !stopped_) {
      metrics::TagSet tags = config_.test_tags;
      tags["scenario"] = s.name;
      pool_.worker(0).Emit("dropped_iterations", metrics::EncodeTagSet(tags), static_cast<double>(dropped),
                           absl::ToUnixNanos(absl::Now()));
    }
  }
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
  if ((sample_vus && (vus_active_.load() > 0 || !vus_sampled_)) || !vus_sampled_) {
    vus_sampled_ = true;
    const std::string tags = metrics::EncodeTagSet(config_.test_tags);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    pool_.worker(0).Emit("vus", tags, static_cast<double>(vus_active_.load()), now);
    pool_.worker(0).Emit("vus_max", tags, static_cast<double>(vus_max_.load()), now);
  }
  return pool_.DrainInto(into);
}

void Engine::AddArrivalVu(ScenarioRun& run) {
  const Scenario& s = *run.scenario;
  if (run.made >= s.max_vus) {
    if (!run.warned_max) {
      run.warned_max = true;
      barrage::Log(Severity::kWarning,
                   absl::StrCat("Insufficient VUs, reached ", s.max_vus, " active VUs and cannot initialize more"),
                   {{"executor", s.executor}, {"scenario", s.name}});
    }
    return;
  }
  // One VU at a time, in the background, as k6 does.
  if (run.making_vu.exchange(true)) return;
  run.made++;
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
      barrage::Log(Severity::kError, absl::StrCat("VU ", vu->id(), " init: ", rt.status().message()));
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
  const absl::Duration period = s.time_unit / s.rate;
  // Absolute schedule: iteration k is due at start + k*period whatever
  // happened before, so a late start never shifts the ones after it.
  for (int64_t k = 0;; ++k) {
    const absl::Time due = run.start + period * k;
    if (due >= run.regular_end || stopped_) break;
    const absl::Duration wait = due - absl::Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
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
    run.in_flight++;
    vu->Start([this, vu, &run, &data, due] {
      const Scenario& sc = *run.scenario;
      const double delay_ms = absl::ToDoubleMilliseconds(absl::Now() - due);
      vus_active_++;
      const std::string encoded = EnterScenario(*vu, sc);
      const bool completed = RunIteration(*vu, sc, data, encoded);
      vus_active_--;
      {
        std::lock_guard<std::mutex> lock(run.pool_mu);
        run.start_delay_ms.Add(delay_ms);
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
    barrage::Log(Severity::kDebug,
                 absl::StrFormat("scenario %s: %d iterations started, start delay p50=%.3fms p99=%.3fms max=%.3fms",
                                 s.name, h.count(), h.Quantile(0.5), h.Quantile(0.99), h.max()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (--run.remaining == 0) cv_.notify_all();
}

EngineProgress Engine::Progress() const {
  return {vus_active_.load(), vus_max_.load(), iterations_completed_.load(), iterations_interrupted_.load()};
}

}  // namespace barrage::agent
