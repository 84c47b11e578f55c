// JavaScript compiled into the binary: babel-standalone 6 and the runtime
// prelude (polyfills Duktape lacks and helpers the modules use).
#ifndef BARRAGE_AGENT_JS_EMBEDDED_JS_H_
#define BARRAGE_AGENT_JS_EMBEDDED_JS_H_

#include <string_view>

namespace barrage::agent::js {

std::string_view BabelSource();
std::string_view PreludeSource();

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_EMBEDDED_JS_H_
