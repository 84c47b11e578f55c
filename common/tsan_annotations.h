// Happens-before edges that ThreadSanitizer cannot see by itself, for
// `scripts/sanitize.sh thread`; no-ops in every other build.
//
// Debian's gRPC and Abseil are not instrumented: when gRPC runs a callback
// on another thread than the one that started the operation, it hands over
// with absl::Mutex and atomics that ThreadSanitizer does not see, and every
// field the two threads touch looks like a race. gRPC's contract orders
// them (an operation's start before its completion callback; every
// reaction before OnDone); these calls tell ThreadSanitizer so, on an
// address that stands for that one order (one pair per address, never
// one address for everything, which would hide real races).
#ifndef BARRAGE_COMMON_TSAN_ANNOTATIONS_H_
#define BARRAGE_COMMON_TSAN_ANNOTATIONS_H_

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace barrage {

// What this thread did so far happens before what follows a later
// HappensAfter(tag) on any thread.
inline void HappensBefore([[maybe_unused]] const void* tag) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(tag));
#endif
}

inline void HappensAfter([[maybe_unused]] const void* tag) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(tag));
#endif
}

}  // namespace barrage

#endif  // BARRAGE_COMMON_TSAN_ANNOTATIONS_H_
