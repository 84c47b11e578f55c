// The function a module's ES5 code is compiled into (CommonJS, as k6 wraps
// a file it compiles as it is). Shared by the runtime, which compiles it,
// and the transform, which test-compiles a file exactly as it will run.
// The head stays on the module's first line so that line numbers in stack
// traces are the user's.
#ifndef BARRAGE_AGENT_JS_MODULE_WRAPPER_H_
#define BARRAGE_AGENT_JS_MODULE_WRAPPER_H_

namespace barrage::agent::js {

inline constexpr char kModuleWrapperHead[] = "function (exports, require, module, __filename, __dirname) {";
inline constexpr char kModuleWrapperTail[] = "\n}";

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_MODULE_WRAPPER_H_
