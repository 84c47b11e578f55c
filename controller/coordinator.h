// The controller's side of the control plane (proto/barrage/v1/control.proto):
// agent sessions, the split of the test over them, setup/start/stop/teardown,
// and the exact merge of their metric deltas.
//
// It is the gRPC service the agents dial (Session) and, for the CLI, a set of
// blocking steps: WaitForAgents, Assign, RunLifecycle, Start, Stop, End.
//
// Sessions run on gRPC's callback API, one reactor per stream: a stream
// costs no thread while it waits, so peers that connect and say nothing
// cannot pin the controller's threads (on the synchronous API, 15,000 silent
// streams held 14,861 threads and 450 MB). Before it authenticates, a
// stream must say hello within `hello_timeout`, and at most
// `max_unauthenticated` streams may be waiting to. The token is checked
// first, in constant time; only an authenticated agent learns anything,
// the protocol version included.
//
// Every message is checked against the session's state and against bounds
// (no metrics before the test starts or after Done, Done only while
// running, progress within the test's VUs, deltas within
// common/metrics/wire.h's limits); an agent that breaks the protocol is
// refused, named (escaped: names and texts from agents never reach the
// terminal raw) and counted lost, so the run ends non-zero.
//
// Threads: gRPC's callback threads run the reactors, which never wait:
// messages are checked and merged under mu_, and writes are queued per
// agent. The CLI's thread drives the steps and waits while an agent's queue
// is full (a slow link, as a blocking write would). A housekeeping thread
// ends sessions that do not say hello in time. The gRPC server serving this
// service must be shut down before the Coordinator is destroyed.
#ifndef BARRAGE_CONTROLLER_COORDINATOR_H_
#define BARRAGE_CONTROLLER_COORDINATOR_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
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
  // Required from agents when not empty. Empty means another credential
  // (a client certificate under mutual TLS) or none (loopback, --insecure):
  // the CLI decides which is acceptable where.
  std::string token;
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

  // Before authentication: the time to say hello, and how many streams may
  // be waiting to (more are refused at once with RESOURCE_EXHAUSTED; twice
  // expected_agents when that is more, so that every agent may knock at once).
  absl::Duration hello_timeout = absl::Seconds(10);
  size_t max_unauthenticated = 64;
  // Bounds on what agents report. max_vus: no agent has more VUs than the
  // whole test's scenarios together (0: unchecked). scenarios: the names
  // progress may be reported for (empty: any name up to 128 bytes).
  int64_t max_vus = 0;
  std::set<std::string> scenarios;
  // Console lines and agent texts longer than this are cut.
  size_t max_text_bytes = 16 << 10;
  // Bytes queued for one agent before Send waits, and how long it waits
  // before the agent counts as lost (it does not read what it is sent).
  size_t max_queued_bytes = 8 << 20;
  absl::Duration send_timeout = absl::Seconds(60);
  // Called by TakeLost (on the caller's thread, without locks held) with a
  // lost agent's name: what else is known about it, appended to its entry
  // (for local agents, the process's exit status and last stderr lines).
  std::function<std::string(const std::string& name)> describe_lost;
  // How many stop signals (Ctrl-C, SIGTERM) the process has had; null:
  // none ever. A new one while Assign or RunLifecycle waits cuts the wait
  // short (k6 interrupts setup() and the VUs' init on the first signal).
  std::function<int()> stop_signals;
  // --out json/csv: set, agents are asked to forward every sample
  // (Assignment.raw_samples) and each RawSamples message, checked against
  // the session's state as deltas are, is handed here on the gRPC thread
  // that read it, without the coordinator's lock. An error is the agent's
  // protocol violation. Unset, RawSamples is one.
  std::function<absl::Status(const v1::RawSamples&)> raw_samples;
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

class Coordinator final : public v1::Control::CallbackService {
 public:
  explicit Coordinator(CoordinatorConfig config);
  ~Coordinator() override;

  // v1::Control::CallbackService
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ControllerMessage>* Session(
      grpc::CallbackServerContext* context) override;

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
  // Ends the sessions: End to every agent, then the streams close.
  void End();

  // True once every agent that is still there has sent Done.
  bool AllDone() const;
  // Agents lost since the last call, each as "name (at HH:MM:SS: why)":
  // a connection that broke or went silent, an agent that broke the
  // protocol, or one that left early (Done with left_early).
  std::vector<std::string> TakeLost();
  std::optional<std::string> abort_reason() const;
  bool test_failed() const;
  RunProgress Progress() const;
  std::vector<AgentSummary> Agents() const;
  // What the merges left out so far (series beyond the limits), summed over
  // the agents; dropped_series == 0 when nothing was.
  metrics::MergeReport Dropped() const;

  // The merged metrics so far; fn runs under the coordinator's lock.
  void WithMetrics(const std::function<void(metrics::MetricStore&)>& fn);

 private:
  class SessionReactor;
  struct Agent;
  enum class HelloOutcome { kWelcome, kRejected, kGone };

  // Queues m for the agent; waits while its queue is full (up to
  // send_timeout, then the agent is lost). False when it is gone.
  bool Send(Agent& agent, v1::ControllerMessage m);
  Agent* FirstLiveAgent();      // mu_ held
  int StopSignals() const;
  // Waits on cv_ (lock held) until done(), the timeout, or a stop signal
  // beyond signals_before; true when done() holds.
  bool WaitInterruptibly(std::unique_lock<std::mutex>& lock, absl::Duration timeout, int signals_before,
                         const std::function<bool()>& done);
  int LiveAgentsLocked() const;  // mu_ held
  // The reactor's entry points. Admit: a new stream (false: refused, over
  // the cap). OnHello: authenticates; kWelcome sets *agent.
  bool Admit(SessionReactor* r);
  HelloOutcome OnHello(SessionReactor* r, const v1::Hello& hello, Agent** agent);
  // Checks and applies one message; an error is a protocol violation (the
  // agent is then lost, and the caller ends the stream).
  absl::Status OnMessage(Agent& agent, const v1::AgentMessage& m);
  void OnStreamEnd(Agent& agent, bool cancelled);
  void Forget(SessionReactor* r);
  // Marks the agent lost with `why` and wakes the waiters (mu_ held).
  void LoseLocked(Agent& agent, const std::string& why);
  void Housekeeping();

  CoordinatorConfig config_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Agent>> agents_;  // guarded by mu_ (the vector; Agents live until destruction)
  std::set<SessionReactor*> unauthenticated_;   // guarded by mu_: streams that have not said hello yet
  std::vector<std::string> lost_;               // names
  std::optional<std::string> abort_reason_;
  bool test_failed_ = false;
  bool ended_ = false;
  bool assigned_ = false;  // the split is made: late agents are turned away
  metrics::MetricStore total_;
  metrics::MergeReport dropped_;
  bool drop_warned_ = false;
  std::vector<std::string> exports_;
  bool stopping_ = false;  // the housekeeping thread ends
  std::condition_variable housekeeping_cv_;
  std::thread housekeeping_;
};

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_COORDINATOR_H_
