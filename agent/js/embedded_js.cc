#include "agent/js/embedded_js.h"

// .incbin pulls the files in at assembly time; the symbols mark their ends.
#define BARRAGE_INCBIN(name, path)                                   \
  __asm__(".section .rodata\n"                                     \
          ".global " #name "_start\n"                              \
          ".balign 16\n" #name "_start:\n"                         \
          ".incbin \"" path "\"\n"                                 \
          ".global " #name "_end\n" #name "_end:\n"                \
          ".byte 0\n"                                              \
          ".previous\n");                                          \
  extern "C" const char name##_start[];                            \
  extern "C" const char name##_end[];

BARRAGE_INCBIN(barrage_babel_js, BARRAGE_BABEL_JS)
BARRAGE_INCBIN(barrage_prelude_js, BARRAGE_PRELUDE_JS)
BARRAGE_INCBIN(barrage_promise_js, BARRAGE_PROMISE_JS)
BARRAGE_INCBIN(barrage_regenerator_js, BARRAGE_REGENERATOR_JS)

namespace barrage::agent::js {

std::string_view BabelSource() {
  return {barrage_babel_js_start, static_cast<size_t>(barrage_babel_js_end - barrage_babel_js_start)};
}
std::string_view PreludeSource() {
  return {barrage_prelude_js_start,
          static_cast<size_t>(barrage_prelude_js_end - barrage_prelude_js_start)};
}

std::string_view PromisePolyfillSource() {
  return {barrage_promise_js_start, static_cast<size_t>(barrage_promise_js_end - barrage_promise_js_start)};
}
std::string_view RegeneratorRuntimeSource() {
  return {barrage_regenerator_js_start,
          static_cast<size_t>(barrage_regenerator_js_end - barrage_regenerator_js_start)};
}

}  // namespace barrage::agent::js
