#include "tests/target/target_options.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

// The PEM text of a TLS flag's file. A file that is there but holds no PEM
// block is caught here: gRPC would only say that the server cannot start.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path, ": it is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  }
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return text.str();
}

absl::StatusOr<std::optional<TargetTls>> ReadTls(const std::string& cert, const std::string& key,
                                                 const std::string& client_ca) {
  if (cert.empty() && key.empty()) {
    if (!client_ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca: needs --tls-cert and --tls-key");
    }
    return std::nullopt;
  }
  if (key.empty()) return absl::InvalidArgumentError("--tls-key: required with --tls-cert");
  if (cert.empty()) return absl::InvalidArgumentError("--tls-cert: required with --tls-key");
  TargetTls tls{cert, key, client_ca, "", "", ""};
  BARRAGE_ASSIGN_OR_RETURN(tls.cert_chain_pem, ReadPemFile("--tls-cert", cert));
  BARRAGE_ASSIGN_OR_RETURN(tls.private_key_pem, ReadPemFile("--tls-key", key));
  if (!client_ca.empty()) {
    BARRAGE_ASSIGN_OR_RETURN(tls.client_ca_pem, ReadPemFile("--tls-client-ca", client_ca));
  }
  return tls;
}

}  // namespace

absl::StatusOr<TargetOptions> ParseTargetFlags(const std::vector<std::string>& args) {
  TargetOptions options;
  const unsigned cores = std::thread::hardware_concurrency();
  options.threads = cores > 0 ? static_cast<int>(cores) : 1;
  std::string latency = "0s", latency_spread = "0s", stream_interval = "0s";
  std::string tls_cert, tls_key, tls_client_ca;
  bool no_reflection = false, no_health = false;

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
  app.add_flag("--strict-utf8", options.strict_utf8,
               "refuse SayHello greetings that are not valid UTF-8 (INVALID_ARGUMENT), as proto3 servers do");
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
  app.add_option("--tls-cert", tls_cert, "serve TLS with this certificate chain (PEM); needs --tls-key")
      ->type_name("FILE");
  app.add_option("--tls-key", tls_key, "private key (PEM) of --tls-cert")->type_name("FILE");
  app.add_option("--tls-client-ca", tls_client_ca,
                 "mutual TLS: require client certificates signed by this CA (PEM)")
      ->type_name("FILE");
  app.add_flag("--no-reflection", no_reflection, "serve without server reflection");
  app.add_flag("--no-health", no_health, "serve without the grpc.health.v1 health service");
  app.add_option("--not-serving", options.not_serving,
                 "the health service reports NAME as NOT_SERVING (repeatable; \"\" is the whole server)")
      ->type_name("NAME")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--stream-error-after", options.stream_error_after,
                 "streams fail with --error-status after N messages sent (LotsOfReplies, "
                 "BidiHello) or received (LotsOfGreetings); 0: at once. All streams, or the "
                 "--error-rate fraction of them. Default: off")
      ->type_name("N")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("--bidi-replies", options.bidi_replies,
                 "BidiHello replies sent per message received (0: none)")
      ->type_name("N")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));

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
  BARRAGE_ASSIGN_OR_RETURN(options.tls, ReadTls(tls_cert, tls_key, tls_client_ca));
  options.reflection = !no_reflection;
  options.health = !no_health;
  if (!options.health && !options.not_serving.empty()) {
    return absl::InvalidArgumentError("--not-serving: the health service is off (--no-health)");
  }
  return options;
}

std::string DescribeMode(const TargetOptions& options) {
  const char* tls = !options.tls.has_value()              ? "off"
                    : options.tls->client_ca_pem.empty() ? "on"
                                                          : "mutual";
  std::string mode = absl::StrCat("tls=", tls, " health=", options.health ? "on" : "off");
  if (!options.not_serving.empty()) {
    absl::StrAppend(&mode, " not_serving=", absl::StrJoin(options.not_serving, ","));
  }
  absl::StrAppend(&mode, " reflection=", options.reflection ? "on" : "off");
  if (options.error_rate > 0) {
    absl::StrAppend(&mode, " error_rate=", options.error_rate, " error_status=", options.error_status);
  }
  if (options.stream_error_after >= 0) {
    absl::StrAppend(&mode, " stream_error_after=", options.stream_error_after);
    if (options.error_rate <= 0) absl::StrAppend(&mode, " error_status=", options.error_status);
  }
  absl::StrAppend(&mode, " bidi_replies=", options.bidi_replies, " threads=", options.threads);
  return mode;
}

}  // namespace barrage::target
