#include "common/line_map.h"

#include "absl/strings/str_cat.h"

namespace barrage {

std::string LineMap::Encode() const {
  std::string out;
  out.reserve(original_.size() * 4);
  for (size_t i = 0; i < original_.size(); ++i) {
    if (i > 0) out.push_back(' ');
    absl::StrAppend(&out, original_[i]);
  }
  return out;
}

absl::StatusOr<LineMap> LineMap::Decode(absl::string_view text) {
  std::vector<uint32_t> lines;
  if (text.empty()) return LineMap();
  size_t i = 0;
  while (true) {
    const size_t start = i;
    uint64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + static_cast<uint64_t>(text[i] - '0');
      if (value > UINT32_MAX) {
        return absl::InvalidArgumentError(absl::StrCat("line number too large at offset ", start));
      }
      ++i;
    }
    if (i == start) {
      return absl::InvalidArgumentError(absl::StrCat("expected a line number at offset ", start));
    }
    lines.push_back(static_cast<uint32_t>(value));
    if (i == text.size()) break;
    if (text[i] != ' ') {
      return absl::InvalidArgumentError(absl::StrCat("expected a space at offset ", i));
    }
    ++i;
  }
  return LineMap(std::move(lines));
}

}  // namespace barrage
