// The controller's side of the control plane (proto/barrage/v1/control.proto):
// agent sessions, the split of the test over them, setup/start/stop/teardown,
// and the exact merge of their metric deltas.
//
// It is the gRPC service the agents dial (Session) and, for the CLI, a set of
// blocking steps: WaitForAgents, Assign, RunLifecycle, Start, Stop, End.
// Threads: one gRPC thread per agent session reads its stream; the CLI's
// thread drives the steps; shared state is guarded by mu_.
#ifndef BARRAGE_CONTROLLER_COORDINATOR_H_
#define BARRAGE_CONTROLLER_COORDINATOR_H_

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "barrage/v1/control.grpc.pb.h"
#include "common/metrics/metric_store.h"
#include "common/metrics/wire.h"

namespace barrage::controller {

inline constexpr uint32_t kProtocolVersion = 1;

struct CoordinatorConfig {
  std::string archive;       // common/archive.h's tar form
  std::string options_json;  // the consolidated options (OptionsToJson)
  std::map<std::string, std::string> env;
  int expected_agents = 1;
  std::string token;  // required from agents when not empty
  int threads = 0;    // VU workers per agent; 0 = the agent's cores
  absl::Duration metrics_interval = absl::Seconds(1);
  metrics::WireLimits limits;
  size_t archive_chunk_bytes = 1 << 20;
  std::string controller_version;
  bool log_joins = true;  // "agent X joined"; off for the embedded agent
  bool vus_memory_check = true;  // agents refuse VUs their memory cannot hold
  // The user's own executionSegment/executionSegmentSequence (this run is
  // a part of a larger split): given to the one agent as they are.
  std::string fixed_segment;
  std::string fixed_sequence;
};

struct AgentSummary {
  std::string name;
  int64_t vus = 0;
  int64_t iterations_completed = 0;
  int64_t iterations_interrupted = 0;
  std::string state;  // "ready", "running", "done", "lost", "failed"
  std::string segment;
};

struct ScenarioRunProgress {
  std::string name;
  int64_t vus_active = 0;
  int64_t iterations_completed = 0;
  double progress = 0;  // the mean over the agents that run it
  bool done = true;     // on every agent
};

struct RunProgress {
  std::vector<ScenarioRunProgress> scenarios;  // by name
  int agents = 0;
  int64_t vus_active = 0;
  int64_t vus_max = 0;
  int64_t iterations_completed = 0;
  int64_t iterations_interrupted = 0;
};

class Coordinator final : public v1::Control::Service {
 public:
  explicit Coordinator(CoordinatorConfig config);
  ~Coordinator() override;

  // v1::Control::Service
  grpc::Status Session(grpc::ServerContext* context,
                       grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>* stream) override;

  // Blocks until the expected number of agents have joined, or timeout:
  // false then (LiveAgents() says how many did).
  bool WaitForAgents(absl::Duration timeout);
  int LiveAgents() const;

  // Plans the segment sequence (weighted by the agents' capacity), sends
  // each agent the archive and its assignment, and waits until all are
  // ready. A failure names the agent; *failure holds the first failed
  // agent's report (its kind: the script's exception (107), an abort in a
  // VU's init (108), the configuration or the agent; message and hint).
  absl::Status Assign(absl::Duration timeout, v1::Failure* failure);
  // The functions the script exports, as the first agent reports them.
  bool Exports(const std::string& fn) const;
  int64_t PlannedVus() const;

  // setup() or teardown() on one agent (the first one still there).
  absl::StatusOr<v1::LifecycleResult> RunLifecycle(const std::string& fn, const std::optional<std::string>& data,
                                                   absl::Duration timeout, const std::string& summary_text = "",
                                                   const std::string& summary_text_color = "");
  // Every agent starts its scenarios at `at`.
  void Start(const std::optional<std::string>& setup_data, absl::Time at);
  // Stops every agent's VUs (abort, abortOnFail, Ctrl-C, a lost agent).
  void Stop(const std::string& reason);
  // Ends the sessions.
  void End();

  // True once every agent that is still there has sent Done.
  bool AllDone() const;
  // Agents lost since the last call, each as "name (at HH:MM:SS: why)".
  std::vector<std::string> TakeLost();
  std::optional<std::string> abort_reason() const;
  bool test_failed() const;
  RunProgress Progress() const;
  std::vector<AgentSummary> Agents() const;

  // The merged metrics so far; fn runs under the coordinator's lock.
  void WithMetrics(const std::function<void(metrics::MetricStore&)>& fn);
  // The deltas merged since the last call (for --out), moved into `into`.
  // Only kept once KeepIntervals() was called.
  void KeepIntervals();
  void TakeInterval(metrics::MetricStore& into);

 private:
  struct Agent;
  void Send(Agent& agent, const v1::ControllerMessage& m);
  Agent* FirstLiveAgent();
  int LiveAgentsLocked() const;  // mu_ held

  CoordinatorConfig config_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Agent>> agents_;  // guarded by mu_ (the vector; Agents live until destruction)
  std::vector<std::string> lost_;
  std::optional<std::string> abort_reason_;
  bool test_failed_ = false;
  bool ended_ = false;
  bool assigned_ = false;  // the split is made: late agents are turned away
  metrics::MetricStore total_;
  bool keep_intervals_ = false;
  metrics::MetricStore interval_;
  std::vector<std::string> exports_;
};

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_COORDINATOR_H_
