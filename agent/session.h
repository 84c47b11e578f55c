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
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/metrics/metric_store.h"

namespace barrage::agent {

inline constexpr uint32_t kProtocolVersion = 1;

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
};

// Runs one session to its end. OK after End; kUnavailable when the
// controller cannot be reached or goes away (the VUs are stopped first);
// kPermissionDenied / kFailedPrecondition when the controller rejects the
// agent (the reason is in the message).
absl::Status RunSession(const std::shared_ptr<grpc::Channel>& channel, const SessionOptions& options);

}  // namespace barrage::agent

#endif  // BARRAGE_AGENT_SESSION_H_
