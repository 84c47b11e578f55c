#include "agent/worker_pool.h"

#include <grpc/support/time.h>

#include <cstdlib>
#include <future>

#include "absl/synchronization/mutex.h"

namespace barrage::agent {
namespace {

gpr_timespec ToGpr(absl::Time t) {
  gpr_timespec ts;
  const absl::Duration since = t - absl::UnixEpoch();
  ts.tv_sec = absl::ToInt64Seconds(since);
  ts.tv_nsec = static_cast<int32_t>(absl::ToInt64Nanoseconds(since - absl::Seconds(ts.tv_sec)));
  ts.clock_type = GPR_CLOCK_REALTIME;
  return ts;
}

}  // namespace

void ConfigureProcessForVus() {
  setenv("GRPC_POLL_STRATEGY", "poll", /*overwrite=*/0);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void Worker::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(posts_mu_);
  posts_.push_back(std::move(fn));
  // One wake-up for a burst of posts (Engine::Run starts every VU at once).
  // An alarm set in the past fires at once on the queue.
  if (!wake_pending_) {
    wake_pending_ = true;
    wake_.alarm.Set(&cq_, gpr_time_0(GPR_CLOCK_MONOTONIC), static_cast<grpc_client::QueueTag*>(&wake_));
  }
}

void Worker::RunPosts() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posts_mu_);
    batch.swap(posts_);
    wake_pending_ = false;
  }
  for (auto& fn : batch) fn();
}

Worker::Timer::Timer(Worker& worker, absl::Time deadline, std::function<void(bool)> fn) : fn_(std::move(fn)) {
  alarm_.Set(worker.cq(), ToGpr(deadline), static_cast<grpc_client::QueueTag*>(this));
}

void Worker::Run() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) static_cast<grpc_client::QueueTag*>(tag)->Complete(ok);
}

void Worker::Emit(const std::string& metric, const std::string& encoded_tags, double value, int64_t time_ns,
                  const Vu* vu) {
  std::lock_guard<std::mutex> lock(mu_);
  Record(metric, encoded_tags, store_.SeriesAggregate(metric, encoded_tags), value, time_ns, vu);
}

void Worker::Emit(metrics::SeriesRef& series, double value, int64_t time_ns, const Vu* vu) {
  std::lock_guard<std::mutex> lock(mu_);
  Record(series.metric, series.encoded_tags, store_.Resolve(series), value, time_ns, vu);
}

void Worker::KeepRaw(const std::string& metric, const std::string& encoded_tags, double value, int64_t time_ns,
                     const Vu* vu) {
  if (raw_.samples.size() >= raw_max_) {
    raw_.dropped++;
    return;
  }
  auto intern = [](std::unordered_map<std::string, uint32_t>& index, std::vector<std::string>& names,
                   const std::string& name) {
    auto it = index.find(name);
    if (it != index.end()) return it->second;
    const auto i = static_cast<uint32_t>(names.size());
    names.push_back(name);
    index.emplace(name, i);
    return i;
  };
  const auto [vu_id, iter] = RawMetadata(vu);
  raw_.samples.push_back({intern(raw_.metric_index, raw_.metrics, metric),
                          intern(raw_.tag_index, raw_.tag_sets, encoded_tags), value, time_ns, vu_id, iter});
  raw_pending_.store(raw_.samples.size(), std::memory_order_relaxed);
}

void Worker::KeepRawSamples(size_t max_pending) {
  std::lock_guard<std::mutex> lock(mu_);
  keep_raw_ = true;
  raw_max_ = max_pending;
}

RawSampleBatch Worker::TakeRawSamples() {
  RawSampleBatch out;
  std::lock_guard<std::mutex> lock(mu_);
  std::swap(out, raw_);
  raw_pending_.store(0, std::memory_order_relaxed);
  return out;
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
  for (int i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    std::promise<void> started;
    std::future<void> ready = started.get_future();
    worker->thread_ = std::thread([worker, &started] {
      worker->thread_id_ = std::this_thread::get_id();
      started.set_value();
      worker->Run();
    });
    ready.wait();
  }
}

WorkerPool::~WorkerPool() {
  for (auto& w : workers_) w->cq_.Shutdown();
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

void WorkerPool::KeepRawSamples(size_t max_pending_per_worker) {
  for (auto& w : workers_) w->KeepRawSamples(max_pending_per_worker);
}

size_t WorkerPool::raw_pending() const {
  size_t n = 0;
  for (const auto& w : workers_) n += w->raw_pending();
  return n;
}

absl::Status WorkerPool::DrainInto(metrics::MetricStore& into) {
  absl::Status result;
  for (auto& w : workers_) result.Update(w->DrainInto(into));
  return result;
}

}  // namespace barrage::agent
