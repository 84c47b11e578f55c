// A virtual user: one Duktape runtime driven by stackful coroutines
// (Boost.Context fibers) on its worker's thread. A blocking JS call suspends
// the fiber and gives the thread back to the worker's io_context; the
// operation's completion posts the resume to the same worker. So thousands
// of VUs need no thousands of threads, and a VU never runs on two threads at
// once.
#ifndef BARRAGE_AGENT_VU_H_
#define BARRAGE_AGENT_VU_H_

#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <functional>
#include <memory>

#include "agent/js/runtime.h"
#include "agent/js/vu_host.h"
#include "agent/worker_pool.h"

namespace barrage::agent {

class Vu;

// What a VU reports to the engine that owns it (Engine implements it).
class VuOwner {
 public:
  virtual ~VuOwner() = default;
  virtual absl::Status DefineMetric(const metrics::MetricDef& def) = 0;
  virtual void AbortTest(const std::string& reason) = 0;
  virtual void FailTest() = 0;
  virtual js::ExecutionInfo Execution(const Vu& vu) = 0;
};

// The engine's bookkeeping of what a VU is running, for k6/execution. Set
// and read only on the VU's own coroutine.
struct VuScenarioState {
  const void* run = nullptr;  // the engine's scenario run; nullptr outside one
  int64_t id_in_test = 0;
  int64_t iteration_in_scenario = 0;        // this VU's, in this scenario
  int64_t scenario_iteration = 0;           // the scenario's, on this instance
  int64_t scenario_iteration_in_test = 0;   // the scenario's, in the whole test
};

class Vu : public js::VuHost {
 public:
  Vu(int64_t id, Worker& worker, VuOwner& owner);
  ~Vu() override;

  int64_t id() const { return id_; }
  Worker& worker() { return worker_; }
  js::Runtime* runtime() { return runtime_.get(); }
  const js::Runtime* runtime_const() const { return runtime_.get(); }
  void set_runtime(std::unique_ptr<js::Runtime> rt) { runtime_ = std::move(rt); }
  VuScenarioState& scenario_state() { return scenario_state_; }
  // The series of the per-iteration samples (Engine::RunIteration), kept
  // while the runtime's tags stay (js::Runtime::tags_epoch).
  struct IterationSeries {
    uint64_t tags_epoch = 0;
    metrics::SeriesRef data_sent, data_received, iterations, iteration_duration;
  };
  IterationSeries& iteration_series() { return iteration_series_; }
  const VuScenarioState& scenario_state() const { return scenario_state_; }

  // Runs task on a fresh coroutine of this VU, on its worker. The VU runs one
  // task at a time: the caller starts the next only after the previous one
  // returned. done (optional) runs on the worker after task returns.
  void Start(std::function<void()> task);

  // Ends the VU context (gracefulStop ran out, abort): sleeps return at once
  // and blocking calls are cut short. Thread-safe.
  void Interrupt();
  // Makes the VU runnable again for the next scenario.
  void ClearInterrupt() { interrupted_ = false; }
  // True from Start until its task has returned and its coroutine is gone.
  // A Vu must not be destroyed while busy: destroying a suspended fiber
  // unwinds its stack with an exception, which cannot cross Duktape's C
  // frames.
  bool busy() const { return tasks_.load(std::memory_order_acquire) > 0; }

  // js::VuHost
  void Block(const std::function<void(Resume)>& start) override;
  void Sleep(absl::Duration d) override;
  void OnInterrupt(std::function<void()> fn) override;
  bool Interrupted() const override { return interrupted_.load(std::memory_order_relaxed); }
  grpc::CompletionQueue* completion_queue() override { return worker_.cq(); }
  std::unique_ptr<Timer> StartTimer(absl::Duration after, std::function<void(bool fired)> fn) override;
  absl::Status DefineMetric(const metrics::MetricDef& def) override;
  void Emit(const std::string& metric, const std::string& encoded_tags, double value) override;
  void EmitSeries(metrics::SeriesRef& series, double value) override;
  void Log(js::LogLevel level, std::string_view message) override;
  void AbortTest(const std::string& reason) override;
  // This VU's script called exec.test.abort() (the others are only
  // interrupted by it).
  bool aborted_test() const { return aborted_test_.load(std::memory_order_relaxed); }
  void FailTest() override { owner_.FailTest(); }
  js::ExecutionInfo Execution() override { return owner_.Execution(*this); }

 private:
  void SwitchIn();   // worker -> VU
  void SwitchOut();  // VU -> worker

  const int64_t id_;
  Worker& worker_;
  VuOwner& owner_;
  std::unique_ptr<js::Runtime> runtime_;
  VuScenarioState scenario_state_;
  IterationSeries iteration_series_;
  // One guarded stack per VU, made by its first task and reused by every
  // later one: an mmap, mprotect and munmap per task showed up as a third of
  // VU start-up time.
  boost::context::stack_context stack_;
  boost::context::fiber fiber_;
  boost::context::fiber caller_;
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> aborted_test_{false};
  std::atomic<int> tasks_{0};  // tasks and posts started and not yet finished
  std::function<void()> interrupt_hook_;  // OnInterrupt's; worker thread only
  // AddressSanitizer's view of the stack switches (see vu.cc): the worker's
  // stack, learnt when the VU's fiber is entered.
  const void* worker_stack_bottom_ = nullptr;
  size_t worker_stack_size_ = 0;
  // ThreadSanitizer's fibers: this VU's current one and the worker's.
  void* tsan_fiber_ = nullptr;
  void* tsan_worker_ = nullptr;
};

}  // namespace barrage::agent

#endif  // BARRAGE_AGENT_VU_H_
