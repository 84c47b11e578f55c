// Durations as k6 reads and prints them (spec §1.16).
#ifndef BARRAGE_COMMON_DURATION_H_
#define BARRAGE_COMMON_DURATION_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage {

// "1h3s", "1.5s", "2d12h", "500" (ms), "400.5" (ms). Units ns, us, µs, ms,
// s, m, h, with an optional leading "<N>d". Errors are kInvalidArgument:
// "invalid duration \"<text>\"". Negative values are accepted here (callers
// validate ranges).
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);
// A JS number: milliseconds, may be fractional.
absl::Duration DurationFromMillis(double ms);

// Go's time.Duration.String(): "10s", "1m30s", "1h0m0s", "500ms", "0s" —
// what k6 prints in its banner ("10 looping VUs for 10s").
std::string FormatGoDuration(absl::Duration d);

}  // namespace barrage

#endif  // BARRAGE_COMMON_DURATION_H_
