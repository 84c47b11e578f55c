// barrage-target's knobs, and how they are read from its command line.
#ifndef BARRAGE_TESTS_TARGET_TARGET_OPTIONS_H_
#define BARRAGE_TESTS_TARGET_TARGET_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage::target {

struct TargetOptions {
  // HOST:PORT; port 0 asks the kernel for a free one (the server reports it).
  std::string listen = "127.0.0.1:9001";
  // Added to every unary reply, plus a uniform draw in [0, latency_spread].
  absl::Duration latency = absl::ZeroDuration();
  absl::Duration latency_spread = absl::ZeroDuration();
  // Seeds the spread and error draws, so a run can be repeated.
  uint64_t seed = 1;
  // Fraction (0..1) of unary calls that fail with error_status, "injected error".
  double error_rate = 0;
  int error_status = 13;  // INTERNAL
  // Every reply string is padded with 'x' to at least this many bytes.
  int reply_size = 0;
  // LotsOfReplies sends this many replies, stream_interval apart.
  int stream_count = 10;
  absl::Duration stream_interval = absl::ZeroDuration();
  // Completion queues, each with its own polling thread, for unary calls.
  int threads = 1;
};

// Reads the flags in args (args[0] is the program name). --help gives
// kCancelled with the help text as message (the caller prints it and exits 0);
// a bad flag or value gives kInvalidArgument naming the flag.
absl::StatusOr<TargetOptions> ParseTargetFlags(const std::vector<std::string>& args);

}  // namespace barrage::target

#endif  // BARRAGE_TESTS_TARGET_TARGET_OPTIONS_H_
