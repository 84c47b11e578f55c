#include "agent/js/event_loop.h"

#include <utility>
#include <vector>

#include "agent/js/safe_call.h"

namespace barrage::agent::js {

int64_t EventLoop::Register(std::function<void()> cancel) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t id = next_id_++;
  ops_.emplace(id, std::move(cancel));
  return id;
}

void EventLoop::Release(int64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ops_.erase(id);
  }
  Wake();
}

void EventLoop::Enqueue(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  Wake();
}

void EventLoop::Wake() {
  VuHost::Resume resume;
  {
    std::lock_guard<std::mutex> lock(mu_);
    resume = std::move(waiting_);
    waiting_ = nullptr;
  }
  // Outside the lock: a resume on the VU's own thread switches to the
  // coroutine at once, which takes the lock again.
  if (resume) resume();
}

bool EventLoop::Busy() {
  std::lock_guard<std::mutex> lock(mu_);
  return !tasks_.empty() || !ops_.empty();
}

void EventLoop::Wait(bool even_if_interrupted) {
  // The VU context ending wakes a loop that waits for tasks, so that it
  // cancels what is open; winding down, it waits for the releases anyway.
  if (!even_if_interrupted) host_.OnInterrupt([this] { Wake(); });
  host_.Block([this, even_if_interrupted](VuHost::Resume resume) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!tasks_.empty() || ops_.empty() || (!even_if_interrupted && host_.Interrupted())) {
      lock.unlock();
      resume();
      return;
    }
    waiting_ = std::move(resume);
  });
  if (!even_if_interrupted) host_.OnInterrupt(nullptr);
}

void EventLoop::CancelAll() {
  std::vector<std::function<void()>> cancels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, cancel] : ops_) cancels.push_back(cancel);
  }
  // Outside the lock: a cancel may complete its operation synchronously.
  for (auto& cancel : cancels) {
    if (cancel) cancel();
  }
}

absl::Status EventLoop::Run(duk_context* ctx, absl::Status first, const std::function<absl::Status()>& drain) {
  absl::Status failure = std::move(first);
  if (failure.ok()) failure = drain();
  while (failure.ok() && !host_.Interrupted()) {
    Task task;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      } else if (ops_.empty()) {
        break;  // nothing open, nothing queued: the iteration is over
      }
    }
    if (!task) {
      Wait(/*even_if_interrupted=*/false);
      continue;
    }
    auto run = [&task](duk_context* c) -> duk_ret_t {
      task(c);
      return 0;
    };
    failure = SafeCall(ctx, run);
    if (failure.ok()) failure = drain();
  }
  // Wind down: cancel what is still open and wait until each operation has
  // released; their callbacks no longer reach the script.
  bool cancelled = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.clear();
      if (ops_.empty()) break;
    }
    if (!cancelled) {
      CancelAll();
      cancelled = true;
      continue;
    }
    Wait(/*even_if_interrupted=*/true);
  }
  return failure;
}

}  // namespace barrage::agent::js
