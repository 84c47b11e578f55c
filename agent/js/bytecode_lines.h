// Puts the user's line numbers into a compiled module, so that Duktape
// itself reports them: in every traceback frame, `e.stack`, `e.lineNumber`
// and the text our C++ makes of an error (values.h's ErrorText). A module
// Babel transformed is compiled from Babel's output, whose lines are not
// the user's (common/line_map.h). Duktape finds a frame's line by looking
// up the frame's bytecode position in the function's pc2line table; this
// rewrites those tables, in the form duk_dump_function writes, through the
// module's LineMap.
//
// Why here and not when a trace is printed: it is done once per module and
// process (VUs load the bytecode made once, Runtime::CompileBundle), an
// error then costs nothing extra, and no reader of a trace (the script's
// own `e.stack`, Duktape.errCreate, our natives) can see the wrong line.
// The price is knowing Duktape 2.7's dump format (duk_api_bytecode.c) and
// its pc2line encoding (duk_hobject_pc2line.c): Debian's duktape-dev,
// which agent/js/duktape builds from, pins that. The parse is checked
// (every length against the bytes left, the table against the function's
// instruction count, the end against the end), so a different format is an
// error, never a bad read; tests/agent/js/bytecode_lines_test.cc proves
// that an identity map gives back Duktape's exact bytes.
#ifndef BARRAGE_AGENT_JS_BYTECODE_LINES_H_
#define BARRAGE_AGENT_JS_BYTECODE_LINES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/line_map.h"

namespace barrage::agent::js {

// `bytecode` as duk_dump_function wrote it, with the line of every
// instruction of every function in it (nested ones included) replaced by
// map.Original(line). Errors: kInternal when the bytes are not the dump
// format this was written for.
absl::StatusOr<std::string> RemapBytecodeLines(absl::string_view bytecode, const LineMap& map);

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_BYTECODE_LINES_H_
