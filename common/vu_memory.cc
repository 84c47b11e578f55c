#include "common/vu_memory.h"

#include <fstream>
#include <string>

#include "absl/strings/str_format.h"

namespace barrage {

std::optional<int64_t> MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return std::nullopt;
}

absl::Status CheckVusFitInMemory(int64_t vus, std::optional<int64_t> available) {
  if (!available || vus <= 0) return absl::OkStatus();
  const double needed = static_cast<double>(vus) * static_cast<double>(kBytesPerVu);
  if (needed <= static_cast<double>(*available)) return absl::OkStatus();
  const double gib = 1024.0 * 1024 * 1024;
  return absl::InvalidArgumentError(absl::StrFormat(
      "-u/--vus and the scenarios ask for up to %d VUs on this machine: about %.1f GiB at %d KiB each, more than "
      "the %.1f GiB available (MemAvailable in /proc/meminfo); lower the VUs, spread the test over more agents, "
      "or pass --vus-memory-check=false to try anyway",
      vus, needed / gib, kBytesPerVu >> 10, static_cast<double>(*available) / gib));
}

}  // namespace barrage
