#include "agent/js/cesu8.h"

#include <cstdint>

namespace barrage::agent::js {
namespace {

// A surrogate encoded in 3 bytes: ED A0..BF xx. High surrogates (D800-DBFF)
// have A0..AF as second byte, low ones (DC00-DFFF) B0..BF.
bool IsSurrogateAt(std::string_view s, size_t i) {
  return i + 2 < s.size() && static_cast<uint8_t>(s[i]) == 0xED && (static_cast<uint8_t>(s[i + 1]) & 0xE0) == 0xA0 &&
         (static_cast<uint8_t>(s[i + 2]) & 0xC0) == 0x80;
}
bool IsHighSurrogateAt(std::string_view s, size_t i) {
  return IsSurrogateAt(s, i) && static_cast<uint8_t>(s[i + 1]) < 0xB0;
}
bool IsLowSurrogateAt(std::string_view s, size_t i) {
  return IsSurrogateAt(s, i) && static_cast<uint8_t>(s[i + 1]) >= 0xB0;
}
uint32_t SurrogateValue(std::string_view s, size_t i) {
  return 0xD000u | ((static_cast<uint8_t>(s[i + 1]) & 0x3Fu) << 6) | (static_cast<uint8_t>(s[i + 2]) & 0x3Fu);
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    return;
  }
  out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
  out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
  out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
  out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
}

// A valid 4-byte UTF-8 sequence at i (F0..F4, three continuation bytes, a
// code point in 10000..10FFFF): its code point, else 0.
uint32_t FourByteAt(std::string_view s, size_t i) {
  if (i + 3 >= s.size()) return 0;
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0xF0 || b0 > 0xF4) return 0;
  uint32_t cp = b0 & 0x07u;
  for (size_t k = 1; k <= 3; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  return cp >= 0x10000 && cp <= 0x10FFFF ? cp : 0;
}

// The length of the valid UTF-8 sequence (not a surrogate) at i, else 0.
size_t ValidSequenceAt(std::string_view s, size_t i) {
  const auto b = static_cast<uint8_t>(s[i]);
  const size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t cp = n == 1 ? b : b & (0x7Fu >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<uint8_t>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3Fu);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

std::string Utf8FromJs(std::string_view s) {
  if (IsAscii(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (IsHighSurrogateAt(s, i) && IsLowSurrogateAt(s, i + 3)) {
      const uint32_t hi = SurrogateValue(s, i), lo = SurrogateValue(s, i + 3);
      AppendUtf8(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
      i += 6;
    } else if (IsSurrogateAt(s, i)) {
      AppendUtf8(out, 0xFFFD);
      i += 3;
    } else if (const size_t n = ValidSequenceAt(s, i); n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      AppendUtf8(out, 0xFFFD);
      ++i;
    }
  }
  return out;
}

bool HasSurrogates(std::string_view s) {
  for (size_t i = s.find('\xED'); i != std::string_view::npos; i = s.find('\xED', i + 1)) {
    if (IsSurrogateAt(s, i)) return true;
  }
  return false;
}

bool HasFourByteSequences(std::string_view s) {
  for (char c : s) {
    if (static_cast<uint8_t>(c) >= 0xF0) return true;
  }
  return false;
}

std::string Utf8ToJs(std::string_view s) {
  if (!HasFourByteSequences(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  for (size_t i = 0; i < s.size();) {
    if (const uint32_t cp = FourByteAt(s, i); cp != 0) {
      const uint32_t v = cp - 0x10000;
      AppendUtf8(out, 0xD800 + (v >> 10));
      AppendUtf8(out, 0xDC00 + (v & 0x3FF));
      i += 4;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

}  // namespace barrage::agent::js
