// The agent's side of the control plane (proto/barrage/v1/control.proto):
// one session runs one test. It says hello, receives the archive and its
// assignment, initialises the VUs, runs setup()/teardown() when asked,
// starts the scenarios at the controller's start time, streams metric
// deltas and progress every interval, and ends with Done.
//
// The same code serves `barrage-agent` (over TCP) and the embedded mode of
// `barrage run` (over an in-process channel to the controller).
#ifndef BARRAGE_AGENT_SESSION_H_
#define BARRAGE_AGENT_SESSION_H_

#include <grpcpp/channel.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/metrics/metric_store.h"

namespace barrage::agent {

inline constexpr uint32_t kProtocolVersion = 1;

// Asks a session to end early and cleanly: barrage-agent on SIGTERM, as
// Kubernetes sends on eviction. Request from any thread (not from a signal
// handler: it takes a lock); the session polls it several times a second.
class SessionInterrupt {
 public:
  void Request(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!why_) why_ = why;
  }
  std::optional<std::string> requested() const {
    std::lock_guard<std::mutex> lock(mu_);
    return why_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<std::string> why_;
};

struct SessionOptions {
  std::string name;       // reported to the controller
  double capacity = 1;    // relative weight for the split
  std::string token;      // the shared token, if the controller wants one
  int threads = 0;        // VU worker threads; 0 = the controller's choice, else cores
  bool forward_logs = true;  // send this process's log lines to the controller
  // Archives larger than this are refused.
  size_t max_archive_bytes = 64 << 20;
  uint32_t protocol_version = kProtocolVersion;  // tests may claim another
  // barrage-agent --prometheus: every delta this agent sends is also merged
  // here (under local_metrics_mu) for its own /metrics.
  metrics::MetricStore* local_metrics = nullptr;
  std::mutex* local_metrics_mu = nullptr;
  // barrage-agent --once --join-timeout: give up when no controller has
  // welcomed this agent by then (a connection that hangs included).
  std::optional<absl::Time> join_deadline;
  // When requested: a running test is stopped as the controller's Stop
  // would (VUs interrupted), its last delta and Done (left_early) go to the
  // controller, and the session closes; outside a test it closes at once.
  const SessionInterrupt* interrupt = nullptr;
  // Metric deltas go in messages of at most this many bytes: gRPC refuses
  // messages over 64 MB, and one interval of unique tags can exceed that.
  size_t max_message_bytes = 4 << 20;
  // --out json/csv (Assignment.raw_samples): samples measured and not yet
  // sent, at most. Past it new ones are dropped and counted (the controller
  // reports them); they go out every interval, and sooner once
  // raw_flush_samples wait. 2^20 samples are about 40 MB.
  size_t max_raw_pending = 1 << 20;
  size_t raw_flush_samples = 1 << 16;
};

// Runs one session to its end. OK after End; kUnavailable when the
// controller cannot be reached or goes away (the VUs are stopped first,
// setup() and teardown() included); kPermissionDenied when the controller
// refuses the agent, kResourceExhausted when it does not need it now (the
// reason is in the message); kDeadlineExceeded when join_deadline passed
// before a welcome; kCancelled when the interrupt ended it (after a running
// test's last delta and Done were sent).
//
// Besides its own messages the session sends a Heartbeat in each second it
// sends nothing else, so that the controller can tell a silent death
// (keepalive) from a closed connection.
absl::Status RunSession(const std::shared_ptr<grpc::Channel>& channel, const SessionOptions& options);

}  // namespace barrage::agent

#endif  // BARRAGE_AGENT_SESSION_H_
