// The VU scheduler's threads (DESIGN.md "VUs, M:N"): N workers, each a
// thread polling its own gRPC CompletionQueue. A VU is pinned to one worker;
// everything that touches its heap runs there, so no VU needs a lock.
//
// Why a CompletionQueue and not a Boost.Asio io_context, as DESIGN.md first
// planned: with an io_context, every RPC completion came in on a gRPC thread
// and hopped to the worker (a futex wake-up and two context switches per
// call). Polling the queue that the worker's calls complete on lets gRPC do
// its I/O on the worker itself and resume the VU with no hop, as a bare
// async gRPC client does; tests/bench/README.md has the figures. Timers and
// posts from other threads are grpc::Alarms on the same queue.
//
// Each worker also owns the metric store its VUs write into.
#ifndef BARRAGE_AGENT_WORKER_POOL_H_
#define BARRAGE_AGENT_WORKER_POOL_H_

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"
#include "agent/grpc/connection.h"
#include "common/metrics/metric_store.h"

namespace barrage::agent {

class Vu;

// Samples as measured, for --out json/csv (control.proto's RawSamples), in
// the order a worker's VUs emitted them. Names and tag sets are interned
// per batch, so a sample costs no allocation once its series was seen, and
// a batch maps onto the wire message as it is.
struct RawSampleBatch {
  struct Sample {
    uint32_t metric;   // index into metrics
    uint32_t tag_set;  // index into tag_sets
    double value;
    int64_t time_ns;
    int64_t vu;    // k6's "vu" metadata; -1: none
    int64_t iter;  // k6's "iter" metadata; -1: none
  };
  std::vector<std::string> metrics;
  std::vector<std::string> tag_sets;  // EncodeTagSet's form
  std::vector<Sample> samples;
  uint64_t dropped = 0;  // beyond the worker's bound since the last batch
  std::unordered_map<std::string, uint32_t> metric_index, tag_index;
};

// The "vu" and "iter" metadata of a VU's sample when its systemTags
// enable them (vu.cc); -1 for none.
std::pair<int64_t, int64_t> RawMetadata(const Vu* vu);

class Worker {
 public:
  // Runs fn on this worker's thread, soon. Thread-safe.
  void Post(std::function<void()> fn);
  // A one-shot timer on this worker: fn(fired) runs on the worker at
  // `deadline`, or with fired=false once Cancel() is called. Owned by the
  // caller, who keeps it alive until fn has run. Thread-affine: created,
  // cancelled and destroyed on the worker.
  class Timer : public grpc_client::QueueTag {
   public:
    Timer(Worker& worker, absl::Time deadline, std::function<void(bool fired)> fn);
    void Cancel() { alarm_.Cancel(); }
    // fn may resume the coroutine that owns this timer, which then destroys
    // it: so fn runs from a copy, and nothing touches `this` afterwards.
    void Complete(bool ok) override {
      std::function<void(bool)> fn = fn_;
      fn(ok);
    }

   private:
    grpc::Alarm alarm_;
    std::function<void(bool)> fn_;
  };

  grpc::CompletionQueue* cq() { return &cq_; }
  bool OnThisThread() const { return std::this_thread::get_id() == thread_id_; }

  // `vu`: the VU that measured it, for the raw samples' metadata.
  void Emit(const std::string& metric, const std::string& encoded_tags, double value, int64_t time_ns,
            const Vu* vu = nullptr);
  // The same for a series a call site keeps (the hot path: no string work).
  void Emit(metrics::SeriesRef& series, double value, int64_t time_ns, const Vu* vu = nullptr);
  absl::Status Define(const metrics::MetricDef& def);
  // From now on every sample is also kept as measured (RawSampleBatch), up
  // to max_pending; past that they are counted as dropped, so a controller
  // slower than the VUs cannot grow this process's memory without end.
  void KeepRawSamples(size_t max_pending);
  // The samples kept since the last call; raw_pending() says how many wait.
  RawSampleBatch TakeRawSamples();
  size_t raw_pending() const { return raw_pending_.load(std::memory_order_relaxed); }
  // Moves this worker's samples into `into` and clears them.
  absl::Status DrainInto(metrics::MetricStore& into);

 private:
  friend class WorkerPool;
  void Run();

  // Posted functions wait here; an Alarm on the queue wakes the worker to run
  // them. The hand-off goes through this mutex rather than the alarm alone,
  // so ThreadSanitizer (which cannot see inside Debian's uninstrumented
  // gRPC) sees the ordering too.
  class WakeTag : public grpc_client::QueueTag {
   public:
    explicit WakeTag(Worker& worker) : worker_(worker) {}
    void Complete(bool) override { worker_.RunPosts(); }
    grpc::Alarm alarm;  // re-Set for each wake-up, once the last one fired

   private:
    Worker& worker_;
  };
  std::mutex posts_mu_;
  std::vector<std::function<void()>> posts_;  // guarded by posts_mu_
  bool wake_pending_ = false;                  // guarded by posts_mu_
  WakeTag wake_{*this};
  void RunPosts();

  grpc::CompletionQueue cq_;
  std::thread thread_;
  std::thread::id thread_id_;
  std::mutex mu_;  // guards store_ and raw_; uncontended but for the once-a-second drain
  metrics::MetricStore store_;
  // Every sample of this worker's VUs passes here, under mu_, once its
  // series is found: the one place to observe samples. With --out
  // json/csv it is also kept as measured; off, that is one test.
  void Record(const std::string& metric, const std::string& encoded_tags, metrics::Aggregate& agg, double value,
              int64_t time_ns, const Vu* vu) {
    agg.Add(value, time_ns);
    if (keep_raw_) [[unlikely]] KeepRaw(metric, encoded_tags, value, time_ns, vu);
  }
  void KeepRaw(const std::string& metric, const std::string& encoded_tags, double value, int64_t time_ns,
               const Vu* vu);
  bool keep_raw_ = false;
  size_t raw_max_ = 0;
  RawSampleBatch raw_;
  std::atomic<size_t> raw_pending_{0};
};

// Sets up a process that runs VUs; call before the first gRPC object exists.
// 1. gRPC polls per completion queue (GRPC_POLL_STRATEGY=poll) rather than
//    with one process-wide epoll set (epoll1, the default), unless the
//    environment already chose. With epoll1 every thread blocked on any
//    polling queue (the control plane's synchronous stream, its server's
//    threads, the connect watcher) is one of the pollers of every socket: it
//    read the VUs' replies and woke the worker for each one, two thread
//    switches per message. Polling per queue keeps a VU's sockets on its
//    worker's queue. Processes that serve many connections themselves (a
//    controller with remote agents) keep epoll1.
// 2. Abseil's mutex deadlock detection off: Debian's Abseil keeps it on, and
//    gRPC takes an absl::Mutex on every call step (3-4 % of a streaming
//    run's CPU went to its cycle graph).
// Measured in tests/bench/README.md.
void ConfigureProcessForVus();

class WorkerPool {
 public:
  explicit WorkerPool(int threads);  // threads <= 0: the number of cores
  ~WorkerPool();                     // shuts the queues down and joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }
  Worker& worker(int i) { return *workers_[i]; }
  absl::Status Define(const metrics::MetricDef& def);
  absl::Status DrainInto(metrics::MetricStore& into);
  void KeepRawSamples(size_t max_pending_per_worker);
  size_t raw_pending() const;

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace barrage::agent

#endif  // BARRAGE_AGENT_WORKER_POOL_H_
