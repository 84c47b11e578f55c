// Whether this machine can hold the VUs a test asks of it: a run with more
// VUs than memory would otherwise allocate until the OOM killer ends it,
// with no summary and no exit code of ours.
#ifndef BARRAGE_COMMON_VU_MEMORY_H_
#define BARRAGE_COMMON_VU_MEMORY_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace barrage {

// What an idle VU costs in memory, measured with tests/bench/vu_memory.sh
// (335 to 350 KiB a VU at the time of writing).
inline constexpr int64_t kBytesPerVu = 350 << 10;

// MemAvailable from /proc/meminfo, in bytes; nullopt when unknown.
std::optional<int64_t> MemAvailableBytes();

// kInvalidArgument when `vus` VUs at kBytesPerVu each would not fit in
// `available` bytes, saying how to go on; ok when available is unknown.
absl::Status CheckVusFitInMemory(int64_t vus, std::optional<int64_t> available);

}  // namespace barrage

#endif  // BARRAGE_COMMON_VU_MEMORY_H_
