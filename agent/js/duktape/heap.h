// Every Duktape heap of the project is made here, so that the hooks our
// Duktape build calls (duk_config_barrage.h) find what they need: the
// interrupt question of the heap's owner, and the bounds of the C stack the
// code runs on.
//
// Threads: a heap is used by one thread at a time (a VU's coroutine may
// move between calls only while suspended); ShouldInterrupt() is called on
// that thread. NativeStack marks are per thread.
#ifndef BARRAGE_AGENT_JS_DUKTAPE_HEAP_H_
#define BARRAGE_AGENT_JS_DUKTAPE_HEAP_H_

#include <duktape.h>

#include <cstddef>

namespace barrage::agent::js {

// What a heap's owner answers to the executor's periodic check.
class HeapHooks {
 public:
  virtual ~HeapHooks() = default;
  // True: the script running in this heap must stop now (gracefulStop ran
  // out, the test was aborted, Ctrl-C, a lifecycle timeout). Duktape then
  // throws a RangeError "execution timeout" at each bytecode instruction
  // until the call that started the script has returned, so the answer
  // must stay true until then, and must be false for code the owner runs
  // afterwards to clean up.
  virtual bool ShouldInterrupt() const = 0;
};

// A heap with the default allocator whose interrupt check asks `hooks`
// (nullptr: never interrupted; hooks must outlive the heap). nullptr when
// out of memory.
duk_context* CreateHeap(const HeapHooks* hooks);

// Marks the C stack that code on this thread runs on from now until the
// mark goes out of scope (restoring the previous one): a coroutine's own
// stack while it runs. Without a mark, the thread's own stack is used,
// as pthread reports it. `lowest` is the lowest address of the stack.
class NativeStackMark {
 public:
  NativeStackMark(const void* lowest, size_t size);
  ~NativeStackMark();
  NativeStackMark(const NativeStackMark&) = delete;
  NativeStackMark& operator=(const NativeStackMark&) = delete;

 private:
  const char* previous_limit_;
};

// Free stack below which Duktape refuses to go deeper (RangeError). It must
// cover the deepest stretch of native code between two of Duktape's checks:
// our natives, protobuf and gRPC work done on a VU's stack.
inline constexpr size_t kNativeStackReserve = 64 * 1024;

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_DUKTAPE_HEAP_H_
