// The VU scheduler's threads (DESIGN.md "VUs, M:N"): N workers, each a
// thread running its own Boost.Asio io_context. A VU is pinned to one
// worker; everything that touches its heap runs there, so no VU needs a lock.
// Each worker also owns the metric store its VUs write into.
#ifndef BARRAGE_AGENT_WORKER_POOL_H_
#define BARRAGE_AGENT_WORKER_POOL_H_

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/metric_store.h"

namespace barrage::agent {

class Worker {
 public:
  boost::asio::io_context& io() { return io_; }
  // Samples of the VUs on this worker. The mutex is uncontended but for the
  // once-per-interval collection.
  void Emit(const std::string& metric, const std::string& encoded_tags, double value, int64_t time_ns);
  absl::Status Define(const metrics::MetricDef& def);
  // Moves this worker's samples into `into` and clears them.
  absl::Status DrainInto(metrics::MetricStore& into);

 private:
  friend class WorkerPool;
  boost::asio::io_context io_{1};
  std::mutex mu_;
  metrics::MetricStore store_;
  std::thread thread_;
};

class WorkerPool {
 public:
  explicit WorkerPool(int threads);  // threads <= 0: the number of cores
  ~WorkerPool();                     // stops and joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }
  Worker& worker(int i) { return *workers_[i]; }
  absl::Status Define(const metrics::MetricDef& def);
  absl::Status DrainInto(metrics::MetricStore& into);

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
};

}  // namespace barrage::agent

#endif  // BARRAGE_AGENT_WORKER_POOL_H_
