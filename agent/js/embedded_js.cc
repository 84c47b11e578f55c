#include "agent/js/embedded_js.h"

#include "common/incbin.h"

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
