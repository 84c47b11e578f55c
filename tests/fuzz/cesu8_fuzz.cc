// Every string crossing the JS heap's edge goes through agent/js/cesu8.h.
// Properties: valid UTF-8 survives the trip into the heap and back; the
// way out never leaves a surrogate behind.
#include "agent/js/cesu8.h"
#include "tests/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>

namespace {
bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = barrage::fuzz::AsView(data, size);
  const std::string out = barrage::agent::js::Utf8FromJs(in);
  if (!IsValidUtf8(out)) {
    std::fprintf(stderr, "Utf8FromJs left invalid UTF-8\n");
    std::abort();
  }
  if (IsValidUtf8(in)) {
    const std::string js = barrage::agent::js::Utf8ToJs(in);
    if (barrage::agent::js::HasFourByteSequences(js) || barrage::agent::js::Utf8FromJs(js) != in) {
      std::fprintf(stderr, "valid UTF-8 did not round-trip\n");
      std::abort();
    }
  }
  return 0;
}
