// Which line of the user's file each line of a transformed module came
// from. Babel moves code (the module transform hoists exported functions
// above the rest; helpers are added; destructuring and async functions
// become several statements), so the line Duktape reports for the code it
// runs is not the user's. The script runtime rewrites the line numbers of
// a module's compiled code through its LineMap once, when it compiles the
// module (agent/js/bytecode_lines.h), so every stack trace, `e.stack` and
// `e.lineNumber` carries the user's line at no cost per iteration.
//
// It lives in common/ because it travels with the module: in the transform
// cache, in the archive (archive.h) and in the Bundle the VUs run from.
// Plain data; copy or move it freely.
#ifndef BARRAGE_COMMON_LINE_MAP_H_
#define BARRAGE_COMMON_LINE_MAP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace barrage {

class LineMap {
 public:
  LineMap() = default;
  // original[i]: the user's line for generated line i + 1; 0 for a line
  // that holds no code of the user's (Babel's helpers).
  explicit LineMap(std::vector<uint32_t> original) : original_(std::move(original)) {}

  // The user's line for a line of the generated code (1-based), or 0 when
  // there is none (Babel's own code, or a line past the end).
  uint32_t Original(uint32_t generated_line) const {
    if (generated_line == 0 || generated_line > original_.size()) return 0;
    return original_[generated_line - 1];
  }
  bool empty() const { return original_.empty(); }
  size_t size() const { return original_.size(); }  // lines of generated code
  const std::vector<uint32_t>& lines() const { return original_; }
  bool operator==(const LineMap& other) const { return original_ == other.original_; }

  // As text, for the cache and the archive: the original line of each
  // generated line in order, in decimal, separated by single spaces
  // ("0 0 3 3 4 6"), so `tar -xOf test.tar lines/...` is readable. Empty
  // for an empty map.
  std::string Encode() const;
  // Encode()'s text back. Errors (kInvalidArgument, "<what is wrong>"):
  // anything but decimal numbers up to 4294967295 separated by single
  // spaces.
  static absl::StatusOr<LineMap> Decode(absl::string_view text);

 private:
  std::vector<uint32_t> original_;
};

}  // namespace barrage

#endif  // BARRAGE_COMMON_LINE_MAP_H_
