// The gRPC server behind barrage-target: hello.HelloService (as grpcbin
// answers it), the route guide service of k6's examples
// (route_guide_service.h), the standard health service and server reflection (each can
// be left out), plaintext or TLS (mutual with a client CA). Request metadata
// keyed "x-echo-*" comes back as response headers and trailers on every method;
// "x-report-encoding" gets the request's compression back as header
// x-request-encoding, "x-reply-encoding: gzip" compressed replies.
//
// It is the server of the client-CPU benchmarks, so it must not be the
// bottleneck: SayHello, the hot path, runs on async completion queues, one
// polling thread per queue, with many requests posted per queue; its latency
// knob is a grpc::Alarm on the same queue, so a delayed call holds no thread.
// The streaming methods use the callback API (less code, not on the hot path).
#ifndef BARRAGE_TESTS_TARGET_TARGET_SERVER_H_
#define BARRAGE_TESTS_TARGET_TARGET_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/target/target_options.h"

namespace barrage::target {

class TargetServer {
 public:
  // Builds and starts the server. kUnavailable (naming the address) when it
  // cannot listen, kInvalidArgument for a malformed address. Not to be called
  // from two threads at once: whether a server gets the health service is a
  // process-wide gRPC setting, set here for each server.
  static absl::StatusOr<std::unique_ptr<TargetServer>> Start(const TargetOptions& options);

  // Stops accepting calls, gives calls in flight up to grace to finish, then
  // cancels the rest and joins the polling threads. Idempotent; the
  // destructor calls it. Call from one thread (not a server thread).
  void Shutdown(absl::Duration grace = absl::Seconds(1));

  // The address actually bound, "<host>:<port>", with the real port when 0 was asked.
  const std::string& address() const;
  int port() const;

  ~TargetServer();
  TargetServer(const TargetServer&) = delete;
  TargetServer& operator=(const TargetServer&) = delete;

  // Opaque; public only so the .cc's call handlers can name it.
  struct Impl;

 private:
  explicit TargetServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace barrage::target

#endif  // BARRAGE_TESTS_TARGET_TARGET_SERVER_H_
