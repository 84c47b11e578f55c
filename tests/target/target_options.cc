#include "tests/target/target_options.h"

#include <string_view>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/status_macros.h"

namespace barrage::target {
namespace {

// A Go-style duration flag ("5ms", "1.5s"); negative makes no sense for a delay.
absl::StatusOr<absl::Duration> ReadDuration(const std::string& flag, const std::string& text) {
  absl::StatusOr<absl::Duration> d = ParseDuration(std::string_view(text));
  if (!d.ok()) return Annotate(d.status(), flag);
  if (*d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": must not be negative, got \"", text, "\""));
  }
  return *d;
}

}  // namespace

absl::StatusOr<TargetOptions> ParseTargetFlags(const std::vector<std::string>& args) {
  TargetOptions options;
  const unsigned cores = std::thread::hardware_concurrency();
  options.threads = cores > 0 ? static_cast<int>(cores) : 1;
  std::string latency = "0s", latency_spread = "0s", stream_interval = "0s";

  CLI::App app("barrage-target: a gRPC hello.HelloService server for tests and benchmarks",
               "barrage-target");
  app.add_option("--listen", options.listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--latency", latency, "delay added to every unary reply (Go duration, e.g. 5ms)")
      ->capture_default_str();
  app.add_option("--latency-spread", latency_spread,
                 "uniform extra unary delay in [0, D], drawn from --seed")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "seed for latency spread and error draws")
      ->capture_default_str();
  app.add_option("--error-rate", options.error_rate, "fraction (0..1) of unary calls that fail")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--error-status", options.error_status, "gRPC status code of injected errors")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--reply-size", options.reply_size, "pad replies with 'x' to at least N bytes")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stream-count", options.stream_count, "replies sent by LotsOfReplies")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stream-interval", stream_interval, "pause between LotsOfReplies replies")
      ->capture_default_str();
  app.add_option("--threads", options.threads,
                 "completion queues (one polling thread each) for unary calls; default: cores")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));

  // CLI11 reports everything by throwing; the exceptions stop here.
  std::vector<std::string> reversed(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return absl::CancelledError(app.help());
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }

  BARRAGE_ASSIGN_OR_RETURN(options.latency, ReadDuration("--latency", latency));
  BARRAGE_ASSIGN_OR_RETURN(options.latency_spread, ReadDuration("--latency-spread", latency_spread));
  BARRAGE_ASSIGN_OR_RETURN(options.stream_interval,
                           ReadDuration("--stream-interval", stream_interval));
  if (options.listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: expected HOST:PORT, got \"", options.listen, "\""));
  }
  return options;
}

}  // namespace barrage::target
