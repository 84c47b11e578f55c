// What a VU's script runtime needs from the engine that runs it. The agent's
// scheduler implements it (agent/vu.h); tests can fake it. Every method is
// called on the VU's own coroutine, on its worker thread.
#ifndef BARRAGE_AGENT_JS_VU_HOST_H_
#define BARRAGE_AGENT_JS_VU_HOST_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/metrics/metric.h"
#include "common/metrics/metric_store.h"

namespace grpc {
class CompletionQueue;
}  // namespace grpc

namespace barrage::agent::js {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// k6/execution's live values (spec §3.3), read when a script reads them.
struct ExecutionInfo {
  bool in_scenario = false;  // false in setup() and teardown()
  int64_t vu_id_in_test = 0;
  int64_t vu_iteration_in_scenario = 0;
  std::string scenario_name;
  std::string executor;
  double scenario_start_unix_ms = 0;
  double scenario_progress = 0;
  int64_t scenario_iteration_in_instance = 0;
  int64_t scenario_iteration_in_test = 0;
  int64_t iterations_completed = 0;
  int64_t iterations_interrupted = 0;
  int64_t vus_active = 0;
  int64_t vus_initialized = 0;
  double test_run_duration_ms = 0;
};

class VuHost {
 public:
  using Resume = std::function<void()>;
  virtual ~VuHost() = default;

  // Suspends the VU's coroutine (never the thread) until the operation that
  // `start` begins calls the Resume it was given. Resume may be called from
  // any thread, exactly once; it may be called before start returns.
  virtual void Block(const std::function<void(Resume)>& start) = 0;
  // While the VU is blocked: fn runs (on the VU's thread) when the VU context
  // ends, to cut the operation short; at once if it has already ended.
  // nullptr clears it; the operation's completion must clear it before the
  // state fn touches is freed. Hosts without interrupts ignore it.
  virtual void OnInterrupt(std::function<void()> fn) { (void)fn; }
  // Suspends the VU for d, or less when the VU context ends (interrupt).
  virtual void Sleep(absl::Duration d) = 0;
  // True once the VU context ended (gracefulStop ran out, abort): blocking
  // calls should return at once.
  virtual bool Interrupted() const = 0;

  // A one-shot timer on the VU's thread, for setTimeout and setInterval:
  // fn(true) runs there at the deadline, or fn(false) soon after Cancel().
  // The handle must be kept until fn has run, and fn may destroy it. The
  // default host has none (nullptr): timers then throw.
  class Timer {
   public:
    virtual ~Timer() = default;
    virtual void Cancel() = 0;
  };
  virtual std::unique_ptr<Timer> StartTimer(absl::Duration, std::function<void(bool fired)>) { return nullptr; }

  // The completion queue the VU's thread polls, for calls that complete
  // there without a thread hop; nullptr when the host has none (then the
  // calls complete on gRPC's threads and Block's resume hops).
  virtual grpc::CompletionQueue* completion_queue() { return nullptr; }

  virtual absl::Status DefineMetric(const metrics::MetricDef& def) = 0;
  // One sample of a defined metric, with its encoded tag set (EncodeTagSet).
  virtual void Emit(const std::string& metric, const std::string& encoded_tags, double value) = 0;
  // The same for a series that a call site keeps (metrics::SeriesRef): a
  // host with a metric store resolves it once, not per sample.
  virtual void EmitSeries(metrics::SeriesRef& series, double value) {
    Emit(series.metric, series.encoded_tags, value);
  }

  virtual void Log(LogLevel level, std::string_view message) = 0;
  // exec.test.abort(): stop the whole test (exit code 108).
  virtual void AbortTest(const std::string& reason) = 0;
  // exec.test.fail(): the test goes on and ends with exit code 110.
  virtual void FailTest() {}
  virtual ExecutionInfo Execution() { return {}; }
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_VU_HOST_H_
