// Babel's source map reduced to what a Duktape stack frame can use: one
// user's line per line of generated code (Duktape's tracebacks carry a
// line, no column).
#ifndef BARRAGE_AGENT_JS_SOURCE_MAP_H_
#define BARRAGE_AGENT_JS_SOURCE_MAP_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/line_map.h"

namespace barrage::agent::js {

// `mappings` is the field of a source map (v3: lines separated by ';',
// segments by ',', each Base64 VLQ). Written by hand: the format is a page
// of the spec, and the rule below is ours; no Debian package decodes it.
//
// A generated line gets the line of its first segment whose original
// position no earlier generated line used. Why: Babel's generator gives a
// node it made (the `var` of a destructuring, regenerator's statements)
// the position of the nearest ancestor that has one, so such a line starts
// with an inherited position (the enclosing function's) and the user's
// own code on it comes later in the line; a statement of the user's starts
// with its own, new position. When every position on the line is
// inherited, the first one is used. A line without segments (Babel's
// helpers, the glue of a class or an async function) maps to 0.
//
// Errors: kInternal for text that is not valid VLQ (Babel wrote it).
absl::StatusOr<LineMap> LineMapFromSourceMap(absl::string_view mappings);

// Names the rule above in the transform cache's key (transform.cc): cached
// line maps were made by it, so a new rule must come with a new name.
inline constexpr char kLineMapRule[] = "first new position 1";

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_SOURCE_MAP_H_
