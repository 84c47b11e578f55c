// Barrage's Duktape options, included by the generated duk_config.h at the
// place Duktape reserves for overrides (agent/js/duktape/CMakeLists.txt).
// Each one is here for a reason stated beside it; tests/bench/README.md
// records what each measured.
#ifndef BARRAGE_AGENT_JS_DUKTAPE_DUK_CONFIG_BARRAGE_H_
#define BARRAGE_AGENT_JS_DUKTAPE_DUK_CONFIG_BARRAGE_H_

// Unwinding by C++ exceptions instead of setjmp/longjmp: an error thrown
// through one of our native functions now runs the destructors of its C++
// locals (a longjmp skipped them: leaks and held locks on script errors).
#define DUK_USE_CPP_EXCEPTIONS

// The executor calls barrage_duk_exec_timeout_check(heap udata) every
// 256 k bytecode instructions (a few ms); while it says yes, Duktape throws
// a RangeError that try/catch cannot keep: a busy loop stops at
// gracefulStop or Ctrl-C, as k6 interrupts its runtime.
#define DUK_USE_INTERRUPT_COUNTER
#define DUK_USE_EXEC_TIMEOUT_CHECK(udata) barrage_duk_exec_timeout_check(udata)

// Checked at every call, JSON level, regexp step and compiler recursion:
// close to the end of the C stack (a VU's coroutine stack is small), a
// RangeError instead of a segfault. The macro is expanded in exactly one
// place, duk_native_stack_check(duk_hthread *thr), so it may read `thr`:
// while Duktape augments an error (our Duktape.errCreate hook in the
// prelude runs then) part of the reserve may be used, as Duktape relaxes
// its own call-depth limit for the same reason; else the RangeError of a
// stack overflow would become "DoubleError: error in error handling".
#define DUK_USE_NATIVE_STACK_CHECK() barrage_duk_native_stack_check(thr->heap->augmenting_error)

// With the stack check above as the real bound, the fixed recursion limits
// need not be low: k6 (goja) stringifies a 1,000-deep object, Duktape's
// default limit of 1,000 did not.
#undef DUK_USE_NATIVE_CALL_RECLIMIT
#define DUK_USE_NATIVE_CALL_RECLIMIT 10000
#undef DUK_USE_JSON_ENC_RECLIMIT
#define DUK_USE_JSON_ENC_RECLIMIT 10000
#undef DUK_USE_JSON_DEC_RECLIMIT
#define DUK_USE_JSON_DEC_RECLIMIT 10000

// Built-in functions as lightweight functions (no object per built-in in
// every heap): smaller VUs. The visible difference is in properties of the
// built-in functions themselves (e.g. they have no own .prototype), which
// scripts do not rely on.
#define DUK_USE_LIGHTFUNC_BUILTINS

// Speed: 64-bit integer fast paths, and JSON.stringify's fast path
// (requests are still stringified on the way to protobuf).
#define DUK_USE_FASTINT
#define DUK_USE_JSON_STRINGIFY_FASTPATH

int barrage_duk_exec_timeout_check(void* udata);
int barrage_duk_native_stack_check(int augmenting_error);

#endif  // BARRAGE_AGENT_JS_DUKTAPE_DUK_CONFIG_BARRAGE_H_
