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

// Duktape runs a voluntary mark-and-sweep when a countdown of allocations
// (and reallocations) reaches zero; each collection resets it to about twice
// the number of live objects and strings (BARRAGE_DUK_GC_TRIGGER_MULT,
// agent/js/duktape/CMakeLists.txt). This sets it, so that a caller can move
// a collection to where it costs least: a VU's init, which compacts its
// heap with a full collection at its end anyway, puts off the ones on the
// way. The countdown still bounds what a heap allocates between two
// collections, and an allocation that fails still collects at once.
void SetGcCountdown(duk_context* ctx, int allocations);

// Every function Duktape makes gets a fresh `prototype` object whose
// `constructor` is the function: an object per function (and a reference
// cycle), though only constructors use it. For each compiled function in
// the heap whose file name starts with file_prefix and whose prototype is
// still that untouched object, held by nothing else, this sets
// fn.prototype to undefined and frees the object. Only for code of our own
// ("barrage:…" files) whose functions are not used with `new` unless their
// prototype was given members (the prelude's, and the libraries runtime.cc
// marks so), never a script's: reading fn.prototype gives undefined
// afterwards. Returns how many it dropped.
int DropUnusedPrototypes(duk_context* ctx, const char* file_prefix);

// How many objects and buffers the heap holds (strings not counted),
// garbage that only mark-and-sweep can free included: the count before and
// after a duk_gc tells how much of it there was (tests).
size_t CountHeapObjects(duk_context* ctx);

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
