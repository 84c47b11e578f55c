#include "agent/worker_pool.h"

namespace barrage::agent {

void Worker::Emit(const std::string& metric, const std::string& encoded_tags, double value, int64_t time_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  store_.AddEncoded(metric, encoded_tags, value, time_ns);
}

absl::Status Worker::Define(const metrics::MetricDef& def) {
  std::lock_guard<std::mutex> lock(mu_);
  return store_.Define(def);
}

absl::Status Worker::DrainInto(metrics::MetricStore& into) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status st = into.Merge(store_);
  store_.Clear();
  return st;
}

WorkerPool::WorkerPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    guards_.push_back(boost::asio::make_work_guard(workers_.back()->io_));
  }
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->thread_ = std::thread([worker] { worker->io_.run(); });
  }
}

WorkerPool::~WorkerPool() {
  for (auto& g : guards_) g.reset();
  for (auto& w : workers_) w->io_.stop();
  for (auto& w : workers_) {
    if (w->thread_.joinable()) w->thread_.join();
  }
}

absl::Status WorkerPool::Define(const metrics::MetricDef& def) {
  for (auto& w : workers_) {
    absl::Status st = w->Define(def);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status WorkerPool::DrainInto(metrics::MetricStore& into) {
  absl::Status result;
  for (auto& w : workers_) result.Update(w->DrainInto(into));
  return result;
}

}  // namespace barrage::agent
