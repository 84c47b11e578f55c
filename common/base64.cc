#include "common/base64.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace barrage {
namespace {

constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool IsUrl(Base64Variant v) { return v == Base64Variant::kUrl || v == Base64Variant::kRawUrl; }
bool Padded(Base64Variant v) { return v == Base64Variant::kStd || v == Base64Variant::kUrl; }

int Value(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

absl::Status Illegal(size_t at) {
  return absl::InvalidArgumentError(absl::StrCat("illegal base64 data at input byte ", at));
}

}  // namespace

std::string Base64Encode(std::string_view data, Base64Variant variant) {
  const char* alphabet = IsUrl(variant) ? kUrlAlphabet : kStdAlphabet;
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                       static_cast<uint8_t>(data[i + 2]);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(data[i + 1]) << 8;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (rest == 2) out.push_back(alphabet[(v >> 6) & 63]);
    if (Padded(variant)) out.append(rest == 1 ? "==" : "=");
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text, Base64Variant variant) {
  const bool url = IsUrl(variant);
  const bool padded = Padded(variant);
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int have = 0;        // sextets in acc
  size_t pos = 0;      // input index
  size_t quantum_start = 0;
  auto skip_newlines = [&]() {
    while (pos < text.size() && (text[pos] == '\r' || text[pos] == '\n')) ++pos;
  };
  while (true) {
    skip_newlines();
    if (pos >= text.size()) break;
    if (have == 0) quantum_start = pos;
    const char c = text[pos];
    if (c == '=' && padded) {
      // Padding ends the data: 2 sextets need "==", 3 need "=".
      if (have < 2) return Illegal(pos);
      ++pos;
      if (have == 2) {
        skip_newlines();
        if (pos >= text.size()) return Illegal(text.size());
        if (text[pos] != '=') return Illegal(pos - 1);
        ++pos;
      }
      skip_newlines();
      if (pos < text.size()) return Illegal(pos);
      if (have == 2) {
        out.push_back(static_cast<char>((acc >> 4) & 0xFF));
      } else {
        out.push_back(static_cast<char>((acc >> 10) & 0xFF));
        out.push_back(static_cast<char>((acc >> 2) & 0xFF));
      }
      return out;
    }
    const int v = Value(c, url);
    if (v < 0) return Illegal(pos);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    ++have;
    ++pos;
    if (have == 4) {
      out.push_back(static_cast<char>((acc >> 16) & 0xFF));
      out.push_back(static_cast<char>((acc >> 8) & 0xFF));
      out.push_back(static_cast<char>(acc & 0xFF));
      acc = 0;
      have = 0;
    }
  }
  if (have == 0) return out;
  // Data ended inside a quantum: only the raw variants may, with 2 or 3 sextets.
  if (padded || have == 1) return Illegal(quantum_start);
  if (have == 2) {
    out.push_back(static_cast<char>((acc >> 4) & 0xFF));
  } else {
    out.push_back(static_cast<char>((acc >> 10) & 0xFF));
    out.push_back(static_cast<char>((acc >> 2) & 0xFF));
  }
  return out;
}

}  // namespace barrage
