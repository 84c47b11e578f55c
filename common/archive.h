// The archive format: what the controller sends to agents and what
// `barrage archive script.js -o test.tar` writes, as `k6 archive` does. It
// holds everything a test needs, so agents never read their own disk: the
// transformed modules, every file the script open()s or client.load()s, the
// exported options and the -e values (DESIGN.md, "Script runtime").
//
// On disk and on the wire it is a POSIX tar file (ustar, with pax extended
// headers for long paths), so that `tar -tvf test.tar` shows what a test
// carries and `tar -xf` unpacks it:
//
//   metadata.json                  {"format": "barrage-archive", "formatVersion": 2,
//                                   "main": ..., "options": {...}, "env": {...},
//                                   "barrageVersion": ...}
//   modules/home/u/test/script.js  the module "/home/u/test/script.js", ES5
//   https/jslib.k6.io/k6-utils/1.4.0/index.js
//                                  the remote module "https://jslib.k6.io/k6-utils/1.4.0/index.js", ES5
//   lines/home/u/test/script.js    its LineMap's text, when Babel wrote it
//   files/home/u/test/data.csv     the file "/home/u/test/data.csv", as read
//
// An absolute path keeps its place below "modules/", "lines/" or "files/"
// without its leading slash; a remote module's URL keeps its place below
// "https/" without its scheme, as in k6's archives (its line map is not
// kept: its frames read as Babel's lines on agents). Archives with remote
// modules or line maps say "formatVersion": 2, so a barrage that cannot
// read them says so; format 1 archives (no line maps, Babel kept the
// user's lines as well as it could then) still load.
#ifndef BARRAGE_COMMON_ARCHIVE_H_
#define BARRAGE_COMMON_ARCHIVE_H_

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/line_map.h"

namespace barrage {

// Paths are keys as common/paths.h defines them: absolute and clean (they
// start with '/' and have no empty, "." or ".." component), or, for
// modules only, https URLs with a clean path. The script's loader makes
// them so from JS strings, which is also why they and the env values are
// UTF-8 (metadata.json is JSON). Plain data; copy or move it freely.
struct Archive {
  std::string main_path;                       // absolute path of the main script
  std::map<std::string, std::string> modules;  // key -> transformed (ES5) source
  // absolute path of a module -> the user's line of each of its lines, for
  // the modules Babel wrote (line_map.h)
  std::map<std::string, LineMap> line_maps;
  std::map<std::string, std::string> files;    // absolute path -> contents (open(), protos)
  // The script's exported options, a JSON object. Read back in
  // nlohmann::json's compact form, keys sorted: the same object, maybe not
  // the same text.
  std::string options_json = "{}";
  std::map<std::string, std::string> env;      // -e values recorded with the archive
  std::string barrage_version;
};

// The newest version of the layout above: WriteArchive writes 1, or 2 when
// the archive holds remote modules; ReadArchive refuses a newer one.
inline constexpr int kArchiveFormatVersion = 2;

// The archive as tar bytes: metadata.json first, then the modules, their
// line maps, then the files, each group sorted by path; mtime 0, uid/gid 0, mode 0644, no
// directory entries. So the same Archive always gives the same bytes (a
// test's archive can be hashed and compared). A path too long for ustar's
// name fields (100 bytes, or 155 + '/' + 100 split at a slash) gets a pax
// extended header ("path"), as does a size over ustar's 8 GiB ("size").
// Paths that break the contract above, a line map of no module, or
// options_json that is not a JSON object, are kInvalidArgument ("file path
// \"a/../b\" is not absolute and clean"): they come from scripts, so they
// are errors, never aborts.
absl::StatusOr<std::string> WriteArchive(const Archive& archive);

// Parses and validates an archive. Besides WriteArchive's output it reads
// what GNU tar makes (--format=ustar, pax or gnu) from a directory holding
// metadata.json, modules/ and files/, including "./" prefixes and directory
// entries, which are skipped.
//
// Errors are kInvalidArgument, "<where>: <what is wrong>", where is the
// archive's file name (or the agent's description of the run):
//   "test.tar: archive is 5000000 bytes, over the limit of 1000000"
//     (checked first, before anything is parsed)
//   "test.tar: not a tar file (...)"         the first header is not ustar
//   "test.tar: corrupt header at offset 1024 (checksum mismatch)"
//   "test.tar: truncated at entry \"modules/x.js\""  data cut short
//   "test.tar: truncated after entry \"files/y\" (no end-of-archive marker)"
//   "test.tar: unknown entry \"notes.txt\" (...)", unsupported entry types
//     (links, devices), duplicate entries, paths with "." or ".."
//   "test.tar: entry \"lines/m.js\": expected a line number at offset 4",
//     "test.tar: entry \"lines/x.js\" is the line map of no module"
//   "test.tar: not a barrage archive (no metadata.json)", a metadata.json
//     that is not JSON or lacks its fields, a newer format version
//   "test.tar: main script \"/m.js\" is not among the archive's modules"
absl::StatusOr<Archive> ReadArchive(std::string_view bytes, const std::string& where,
                                    size_t max_bytes);

}  // namespace barrage

#endif  // BARRAGE_COMMON_ARCHIVE_H_
