// A VU's event loop (spec §1.14). After the iteration's function returns, the
// VU keeps running queued callbacks (stream events, timer callbacks,
// asyncInvoke results, each followed by the promise jobs it queued) for as
// long as an asynchronous operation is open; then the iteration ends.
//
// Operations (a stream, a timer, an asyncInvoke) register when they start
// and release when their native side is completely done: no callback of
// theirs can come after the release. Their completions queue tasks; the
// loop runs the tasks on the VU's coroutine, never on the thread that
// completed the operation. While nothing is queued the coroutine is
// suspended (VuHost::Block), so a waiting VU never holds a worker thread.
//
// When the iteration fails (a callback threw, an unhandled rejection) or the
// VU context ends (interrupt), every open operation is cancelled and the loop
// waits for their releases, dropping their tasks: nothing is left in flight
// when the next iteration starts or the runtime is destroyed.
#ifndef BARRAGE_AGENT_JS_EVENT_LOOP_H_
#define BARRAGE_AGENT_JS_EVENT_LOOP_H_

#include <duktape.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

#include "absl/status/status.h"
#include "agent/js/vu_host.h"

namespace barrage::agent::js {

class EventLoop {
 public:
  // A callback into the script, run on the VU's coroutine under a protected
  // call: it may throw (the iteration then fails with that error).
  using Task = std::function<void(duk_context* ctx)>;

  explicit EventLoop(VuHost& host) : host_(host) {}

  // Registers an open operation; cancel (called on the VU's coroutine) must
  // make it finish soon. Returns its id for Release.
  int64_t Register(std::function<void()> cancel);
  // The operation is done: no task of its will be queued after this.
  void Release(int64_t id);
  // Queues a task. Thread-safe; wakes the loop.
  void Enqueue(Task task);
  // Wakes a waiting loop to re-check (the VU context ended). Thread-safe.
  void Wake();

  // Runs the loop after the iteration's call: `first` is the call's own
  // outcome. drain runs the promise jobs and returns the first unhandled
  // rejection as an error. Returns the first failure.
  absl::Status Run(duk_context* ctx, absl::Status first, const std::function<absl::Status()>& drain);

  // True when something is open or queued (the loop has work).
  bool Busy();

 private:
  void Wait(bool even_if_interrupted);
  void CancelAll();

  VuHost& host_;
  std::mutex mu_;
  std::deque<Task> tasks_;                      // guarded by mu_
  std::map<int64_t, std::function<void()>> ops_;  // guarded by mu_
  int64_t next_id_ = 1;                         // guarded by mu_
  VuHost::Resume waiting_;                      // guarded by mu_: set while suspended
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_EVENT_LOOP_H_
