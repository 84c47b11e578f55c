#include "agent/js/source_map.h"

#include <cstdint>
#include <cstdlib>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"

namespace barrage::agent::js {
namespace {

int Base64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

absl::StatusOr<LineMap> LineMapFromSourceMap(absl::string_view mappings) {
  std::vector<uint32_t> lines;
  // Original positions (line << 32 | column) used by earlier generated lines.
  std::unordered_set<uint64_t> seen;
  std::vector<uint64_t> on_line;
  // Fields 2-4 (source, line, column) are relative to the previous segment
  // with them, across lines; field 1 (generated column) restarts per line.
  int64_t source_line = 0, source_column = 0;
  size_t i = 0;
  while (true) {
    uint32_t first_new = 0, first_any = 0;
    on_line.clear();
    while (i < mappings.size() && mappings[i] != ';') {
      int64_t fields[5] = {0, 0, 0, 0, 0};
      int count = 0;
      while (i < mappings.size() && mappings[i] != ',' && mappings[i] != ';') {
        // One VLQ: 5 bits per digit, least significant first, bit 5 set
        // while more follow; the lowest bit of the result is the sign.
        uint64_t value = 0;
        int shift = 0;
        while (true) {
          if (i >= mappings.size()) return absl::InternalError("source map: a number is cut short");
          const int digit = Base64Digit(mappings[i]);
          if (digit < 0) {
            return absl::InternalError(absl::StrCat("source map: unexpected '", mappings.substr(i, 1), "' at ", i));
          }
          ++i;
          if (shift > 60) return absl::InternalError("source map: number too large");
          value |= static_cast<uint64_t>(digit & 31) << shift;
          shift += 5;
          if ((digit & 32) == 0) break;
        }
        if (count == 5) return absl::InternalError("source map: a segment has more than 5 fields");
        const auto magnitude = static_cast<int64_t>(value >> 1);
        fields[count++] = (value & 1) != 0 ? -magnitude : magnitude;
      }
      if (i < mappings.size() && mappings[i] == ',') ++i;
      if (count == 1) continue;  // a generated column with no source
      if (count < 4) return absl::InternalError("source map: a segment has 2 or 3 fields");
      // A delta beyond the 32-bit range is out of range whatever the
      // position; bounding it first keeps the sums below from overflowing.
      if (std::llabs(fields[2]) > UINT32_MAX || std::llabs(fields[3]) > UINT32_MAX) {
        return absl::InternalError("source map: a position out of range");
      }
      source_line += fields[2];
      source_column += fields[3];
      if (source_line < 0 || source_column < 0 || source_line >= UINT32_MAX || source_column > UINT32_MAX) {
        return absl::InternalError("source map: a position out of range");
      }
      const auto line = static_cast<uint32_t>(source_line + 1);
      const uint64_t position = (static_cast<uint64_t>(source_line) << 32) | static_cast<uint64_t>(source_column);
      if (first_any == 0) first_any = line;
      if (first_new == 0 && seen.count(position) == 0) first_new = line;
      on_line.push_back(position);
    }
    lines.push_back(first_new != 0 ? first_new : first_any);
    seen.insert(on_line.begin(), on_line.end());
    if (i >= mappings.size()) break;
    ++i;  // ';'
  }
  return LineMap(std::move(lines));
}

}  // namespace barrage::agent::js
