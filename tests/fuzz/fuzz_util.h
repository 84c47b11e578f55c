// Helpers shared by the fuzz targets (one LLVMFuzzerTestOneInput per file).
#ifndef BARRAGE_TESTS_FUZZ_FUZZ_UTIL_H_
#define BARRAGE_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace barrage::fuzz {

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Splits the input at its first NUL into two independent inputs.
inline std::pair<std::string_view, std::string_view> SplitAtNul(std::string_view in) {
  const size_t nul = in.find('\0');
  if (nul == std::string_view::npos) return {in, std::string_view()};
  return {in.substr(0, nul), in.substr(nul + 1)};
}

}  // namespace barrage::fuzz

#endif  // BARRAGE_TESTS_FUZZ_FUZZ_UTIL_H_
