#include "agent/js/duktape/heap.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>

namespace barrage::agent::js {
namespace {

// The lowest address code on this thread may reach (stack bottom + the
// reserve), for the current stack: a coroutine's while one runs (set by a
// NativeStackMark), else the thread's own (found once per thread).
thread_local const char* t_limit = nullptr;
thread_local const char* t_thread_limit = nullptr;

const char* ThreadStackLimit() {
  if (t_thread_limit == nullptr) {
    pthread_attr_t attr;
    void* lowest = nullptr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstack(&attr, &lowest, &size);
      pthread_attr_destroy(&attr);
    }
    // Unknown bounds (never seen on Linux): no limit rather than a wrong one.
    t_thread_limit = lowest == nullptr ? reinterpret_cast<const char*>(1)
                                       : static_cast<const char*>(lowest) + kNativeStackReserve;
  }
  return t_thread_limit;
}

void FatalHandler(void*, const char* message) {
  // Duktape calls this only for errors outside any protected call, which
  // our code never makes (every entry is a duk_pcall/duk_safe_call); a
  // call here is a defect of ours.
  fprintf(stderr, "barrage: fatal Duktape error: %s\n", message != nullptr ? message : "(no message)");
  abort();
}

}  // namespace

duk_context* CreateHeap(const HeapHooks* hooks) {
  return duk_create_heap(nullptr, nullptr, nullptr, const_cast<HeapHooks*>(hooks), FatalHandler);
}

NativeStackMark::NativeStackMark(const void* lowest, size_t size) : previous_limit_(t_limit) {
  t_limit = size > kNativeStackReserve ? static_cast<const char*>(lowest) + kNativeStackReserve
                                       : static_cast<const char*>(lowest) + size;
}

NativeStackMark::~NativeStackMark() { t_limit = previous_limit_; }

}  // namespace barrage::agent::js

int barrage_duk_exec_timeout_check(void* udata) {
  const auto* hooks = static_cast<const barrage::agent::js::HeapHooks*>(udata);
  return hooks != nullptr && hooks->ShouldInterrupt() ? 1 : 0;
}

int barrage_duk_native_stack_check(int augmenting_error) {
  using barrage::agent::js::kNativeStackReserve;
  using barrage::agent::js::t_limit;
  const char* limit = t_limit != nullptr ? t_limit : barrage::agent::js::ThreadStackLimit();
  const char* here = static_cast<const char*>(__builtin_frame_address(0));
  if (augmenting_error != 0) return here + kNativeStackReserve / 2 < limit ? 1 : 0;
  return here < limit ? 1 : 0;
}
