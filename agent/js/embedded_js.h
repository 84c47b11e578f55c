// JavaScript compiled into the binary: babel-standalone 6, the runtime
// prelude (polyfills Duktape lacks and helpers the modules use) and the npm
// libraries for promises and async functions.
#ifndef BARRAGE_AGENT_JS_EMBEDDED_JS_H_
#define BARRAGE_AGENT_JS_EMBEDDED_JS_H_

#include <string_view>

namespace barrage::agent::js {

std::string_view BabelSource();
std::string_view PreludeSource();
// npm's promise-polyfill and regenerator-runtime (scripts/js), loaded into a
// VU heap when a script first uses Promise or an async function.
std::string_view PromisePolyfillSource();
std::string_view RegeneratorRuntimeSource();

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_EMBEDDED_JS_H_
