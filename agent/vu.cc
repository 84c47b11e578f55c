#include "agent/vu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>

#include "agent/js/duktape/heap.h"

#include "common/log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define BARRAGE_ASAN_FIBERS 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define BARRAGE_TSAN_FIBERS 1
#endif

namespace barrage::agent {
namespace {

// AddressSanitizer must be told of every stack switch, or it reports false
// stack-use-after-scope errors on the VU stacks. Boost.Context does this
// itself only in its ucontext flavour, which Debian's library is not built
// with; so the switches are annotated here. No-ops in normal builds.
#if defined(BARRAGE_ASAN_FIBERS)
void StartSwitch(void** fake_stack, const void* bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
}
void FinishSwitch(void* fake_stack, const void** bottom, size_t* size) {
  __sanitizer_finish_switch_fiber(fake_stack, bottom, size);
}
#else
void StartSwitch(void**, const void*, size_t) {}
void FinishSwitch(void*, const void**, size_t*) {}
#endif
// ThreadSanitizer likewise needs to know which logical fiber runs.
#if defined(BARRAGE_TSAN_FIBERS)
void* TsanCurrent() { return __tsan_get_current_fiber(); }
void* TsanCreate() { return __tsan_create_fiber(0); }
void TsanSwitch(void* fiber) { __tsan_switch_to_fiber(fiber, 0); }
void TsanDestroy(void* fiber) { __tsan_destroy_fiber(fiber); }
#else
void* TsanCurrent() { return nullptr; }
void* TsanCreate() { return nullptr; }
void TsanSwitch(void*) {}
void TsanDestroy(void*) {}
#endif

// Stack of one VU coroutine. JS-to-JS calls run without C recursion, but
// every native boundary (a built-in calling back into JS: Array.map,
// JSON.stringify, getters, sort comparators, Proxy traps) recurses in C, a
// few KiB per level, and Duktape refuses to go deeper when fewer than
// js::kNativeStackReserve bytes are left (a RangeError, not a segfault).
// 1 MiB lets `[n].map(x => f(x - 1))` recurse 300 deep as in k6. The pages
// are reserved, not committed: only the ones touched count towards RSS, so
// an idle VU costs the same as with a smaller stack.
constexpr size_t kStackSize = 1024 * 1024;

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

// Boost.Context's protected_fixedsize_stack, but mapped with MAP_NORESERVE:
// 10,000 VUs reserve 10 GiB of address space, which strict overcommit
// accounting would otherwise count as committed memory.
boost::context::stack_context AllocateStack() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t total = kStackSize + page;  // + the guard page at the bottom
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                    -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();  // as Boost's allocator does; caught nowhere: out of memory
  mprotect(base, page, PROT_NONE);
  boost::context::stack_context sc;
  sc.size = kStackSize;
  sc.sp = static_cast<char*>(base) + total;
  return sc;
}

void FreeStack(boost::context::stack_context& sc) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  munmap(static_cast<char*>(sc.sp) - sc.size - page, sc.size + page);
  sc.sp = nullptr;
}

// A Boost.Context StackAllocator handing out the VU's own stack.
class VuStack {
 public:
  explicit VuStack(boost::context::stack_context* slot) : slot_(slot) {}
  boost::context::stack_context allocate() {
    if (slot_->sp == nullptr) *slot_ = AllocateStack();
    return *slot_;
  }
  void deallocate(boost::context::stack_context&) noexcept {}  // kept for the next task

 private:
  boost::context::stack_context* slot_;
};

// The VU whose coroutine this thread is running, if any.
thread_local Vu* t_running = nullptr;

}  // namespace

Vu::Vu(int64_t id, Worker& worker, VuOwner& owner) : id_(id), worker_(worker), owner_(owner) {}

Vu::~Vu() {
  if (stack_.sp != nullptr) FreeStack(stack_);
}

void Vu::Start(std::function<void()> task) {
  tasks_.fetch_add(1, std::memory_order_acq_rel);
  worker_.Post([this, task = std::move(task)]() mutable {
    tsan_fiber_ = TsanCreate();
    fiber_ = boost::context::fiber(
        std::allocator_arg, VuStack(&stack_),
        [this, task = std::move(task)](boost::context::fiber&& caller) mutable {
          FinishSwitch(nullptr, &worker_stack_bottom_, &worker_stack_size_);
          caller_ = std::move(caller);
          task();
          task = nullptr;  // its captures die on this stack, before it goes
          StartSwitch(nullptr, worker_stack_bottom_, worker_stack_size_);  // for good
          TsanSwitch(tsan_worker_);
          return std::move(caller_);
        });
    SwitchIn();
  });
}

void Vu::SwitchIn() {
  Vu* outer = t_running;
  t_running = this;
  void* fake_stack = nullptr;
  StartSwitch(&fake_stack, static_cast<char*>(stack_.sp) - stack_.size, stack_.size);
  tsan_worker_ = TsanCurrent();
  TsanSwitch(tsan_fiber_);
  {
    // Duktape's native stack check measures the VU's stack while it runs.
    js::NativeStackMark mark(static_cast<char*>(stack_.sp) - stack_.size, stack_.size);
    fiber_ = std::move(fiber_).resume();
  }
  FinishSwitch(fake_stack, nullptr, nullptr);
  t_running = outer;
  if (!fiber_) TsanDestroy(tsan_fiber_);
  // An empty fiber: the task returned. Nothing touches this Vu after the
  // count drops, so the owner may destroy it from then on. (A count, not a
  // flag: the next task may already be queued when this one ends.)
  if (!fiber_) tasks_.fetch_sub(1, std::memory_order_acq_rel);
}
void Vu::SwitchOut() {
  void* fake_stack = nullptr;
  StartSwitch(&fake_stack, worker_stack_bottom_, worker_stack_size_);
  TsanSwitch(tsan_worker_);
  caller_ = std::move(caller_).resume();
  FinishSwitch(fake_stack, &worker_stack_bottom_, &worker_stack_size_);
}

void Vu::Interrupt() {
  interrupted_ = true;
  tasks_.fetch_add(1, std::memory_order_acq_rel);  // the post below uses this Vu
  worker_.Post([this] {
    // Whatever the VU is blocked in (a sleep, a call, a dial, its event
    // loop) is cut short. Safe here: on the worker, the coroutine suspended.
    if (interrupt_hook_) {
      std::function<void()> hook = std::move(interrupt_hook_);
      interrupt_hook_ = nullptr;
      hook();
    }
    tasks_.fetch_sub(1, std::memory_order_acq_rel);
  });
}

void Vu::Block(const std::function<void(Resume)>& start) {
  start([this] {
    if (worker_.OnThisThread() && t_running == nullptr) {
      // Completed on our worker's queue loop (a call on its own queue): resume
      // at once, no hop.
      SwitchIn();
    } else {
      // From another thread, or synchronously from inside start: posted to
      // the worker, which runs it only after this fiber has switched out.
      worker_.Post([this] { SwitchIn(); });
    }
  });
  SwitchOut();
}

void Vu::OnInterrupt(std::function<void()> fn) {
  if (fn && Interrupted()) {
    fn();
    return;
  }
  interrupt_hook_ = std::move(fn);
}

void Vu::Sleep(absl::Duration d) {
  if (Interrupted() || d <= absl::ZeroDuration()) return;
  Worker::Timer timer(worker_, absl::Now() + d, [this](bool) { SwitchIn(); });
  OnInterrupt([&timer] { timer.Cancel(); });
  SwitchOut();
  OnInterrupt(nullptr);
}

namespace {
class VuTimer : public js::VuHost::Timer {
 public:
  VuTimer(Worker& worker, absl::Duration after, std::function<void(bool)> fn)
      : timer_(worker, absl::Now() + after, std::move(fn)) {}
  void Cancel() override { timer_.Cancel(); }

 private:
  Worker::Timer timer_;
};
}  // namespace

std::unique_ptr<js::VuHost::Timer> Vu::StartTimer(absl::Duration after, std::function<void(bool fired)> fn) {
  return std::make_unique<VuTimer>(worker_, after, std::move(fn));
}

absl::Status Vu::DefineMetric(const metrics::MetricDef& def) { return owner_.DefineMetric(def); }

void Vu::Emit(const std::string& metric, const std::string& encoded_tags, double value) {
  worker_.Emit(metric, encoded_tags, value, NowNs(), this);
}

std::pair<int64_t, int64_t> RawMetadata(const Vu* vu) {
  // k6 (js/runner.go) sets them as metadata when systemTags has them: the
  // VU's __VU and the __ITER of the iteration under way.
  if (vu == nullptr || vu->runtime_const() == nullptr) return {-1, -1};
  const js::Runtime& rt = *vu->runtime_const();
  return {rt.system_tag("vu") ? rt.vu_id() : -1, rt.system_tag("iter") ? rt.iteration() : -1};
}

void Vu::EmitSeries(metrics::SeriesRef& series, double value) { worker_.Emit(series, value, NowNs(), this); }

void Vu::Log(js::LogLevel level, std::string_view message) {
  static constexpr Severity kMap[] = {Severity::kDebug, Severity::kInfo, Severity::kWarning, Severity::kError};
  barrage::Log(kMap[static_cast<int>(level)], absl::string_view(message.data(), message.size()), {{"source", "console"}});
}

void Vu::AbortTest(const std::string& reason) {
  aborted_test_ = true;
  owner_.AbortTest(reason);
}

}  // namespace barrage::agent
