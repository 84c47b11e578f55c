// What a test's script consists of once the first init pass has run: the
// transformed modules and every file the script read, as DESIGN.md's archive
// holds them. VUs execute only from a Bundle: open() and client.load() on a
// VU read it, never the disk. Immutable once built; shared by every VU.
#ifndef BARRAGE_AGENT_JS_BUNDLE_H_
#define BARRAGE_AGENT_JS_BUNDLE_H_

#include <map>
#include <memory>
#include <string>

#include "agent/js/shared_arrays.h"
#include "common/line_map.h"

namespace barrage::agent::js {

struct Bundle {
  std::string main_path;                      // absolute path of the main script
  std::map<std::string, std::string> modules;  // key (path or https URL) -> transformed (ES5) source
  // key -> the user's lines of a module Babel wrote (none for a module that
  // runs as the user wrote it); applied to its bytecode.
  std::map<std::string, LineMap> line_maps;
  std::map<std::string, std::string> files;    // absolute path -> contents (open(), protos)
  // absolute path -> Duktape bytecode of the module wrapper function, made
  // once from `modules` (Runtime::CompileBundle) and loaded into each VU.
  std::map<std::string, std::string> bytecode;
  // k6/data's SharedArrays of the run, built by the first VU that asks and
  // shared by all (the store is thread-safe; the Bundle stays immutable).
  std::shared_ptr<SharedArrayStore> shared_arrays = std::make_shared<SharedArrayStore>();
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_BUNDLE_H_
