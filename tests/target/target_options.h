// barrage-target's knobs, and how they are read from its command line.
#ifndef BARRAGE_TESTS_TARGET_TARGET_OPTIONS_H_
#define BARRAGE_TESTS_TARGET_TARGET_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage::target {

// Serving TLS: the PEM texts, read when the flags are parsed, and the files
// they came from (for messages). With client_ca_pem the server requires a
// client certificate signed by it (mutual TLS); without, it asks for none.
struct TargetTls {
  std::string cert_path;
  std::string key_path;
  std::string client_ca_path;  // empty: no client certificates
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string client_ca_pem;
};

struct TargetOptions {
  // HOST:PORT; port 0 asks the kernel for a free one (the server reports it).
  std::string listen = "127.0.0.1:9001";
  // Added to every unary reply, plus a uniform draw in [0, latency_spread].
  absl::Duration latency = absl::ZeroDuration();
  absl::Duration latency_spread = absl::ZeroDuration();
  // Seeds the spread and error draws, so a run can be repeated.
  uint64_t seed = 1;
  // Fraction (0..1) of unary calls that fail with error_status, "injected
  // error"; also the fraction of streaming calls that fail, with "injected
  // stream error" (at once, or after stream_error_after messages).
  double error_rate = 0;
  int error_status = 13;  // INTERNAL
  // Refuse (INVALID_ARGUMENT) a SayHello greeting that is not valid UTF-8,
  // as proto3 servers do: surrogates encoded on their own (CESU-8) included.
  bool strict_utf8 = false;
  // Every reply string is padded with 'x' to at least this many bytes.
  int reply_size = 0;
  // LotsOfReplies sends this many replies, stream_interval apart.
  int stream_count = 10;
  absl::Duration stream_interval = absl::ZeroDuration();
  // Completion queues, each with its own polling thread, for unary calls.
  int threads = 1;

  // Plaintext when unset.
  std::optional<TargetTls> tls;
  // The grpc.reflection.v1alpha and grpc.health.v1 services; off, a client
  // calling them gets UNIMPLEMENTED.
  bool reflection = true;
  bool health = true;
  // Service names the health service reports NOT_SERVING ("" is the server
  // as a whole). hello.HelloService is SERVING unless named here.
  std::vector<std::string> not_serving;
  // When >= 0, streams fail with error_status, "injected stream error", once
  // they have sent (LotsOfReplies, BidiHello) or received (LotsOfGreetings)
  // this many messages; 0 fails them at once. Every stream fails, or, when
  // error_rate > 0, that fraction of them. A stream that ends first (all
  // LotsOfReplies sent, the client half-closing) ends normally.
  int stream_error_after = -1;
  // BidiHello replies this many times to each message (0: it only reads).
  int bidi_replies = 1;
};

// Reads the flags in args (args[0] is the program name), and the TLS files
// they name. --help gives kCancelled with the help text as message (the
// caller prints it and exits 0); a bad flag or value gives kInvalidArgument
// naming the flag, a TLS file that cannot be read kNotFound naming the flag
// and the path.
absl::StatusOr<TargetOptions> ParseTargetFlags(const std::vector<std::string>& args);

// One line saying how the server is set up, e.g. "tls=mutual health=on
// not_serving=a,b reflection=off stream_error_after=3 bidi_replies=1", for
// the log. It never contains "listening on", which readers of the ready line match.
std::string DescribeMode(const TargetOptions& options);

}  // namespace barrage::target

#endif  // BARRAGE_TESTS_TARGET_TARGET_OPTIONS_H_
