#include "controller/coordinator.h"

#include <openssl/crypto.h>

#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/execution_segment.h"
#include "common/log.h"

namespace barrage::controller {
namespace {

using v1::AgentMessage;
using v1::ControllerMessage;

// The token check must not tell an attacker how much of a guess was right:
// OpenSSL's CRYPTO_memcmp takes the same time whatever the bytes are.
bool TokenMatches(const std::string& want, const std::string& got) {
  if (want.size() != got.size()) return false;
  return CRYPTO_memcmp(want.data(), got.data(), want.size()) == 0;
}

}  // namespace

struct Coordinator::Agent {
  enum class State { kJoined, kAssigned, kReady, kFailed, kRunning, kDone, kLost, kEnded };
  std::string name;
  double capacity = 1;
  std::mutex write_mu;
  grpc::ServerReaderWriter<ControllerMessage, AgentMessage>* stream = nullptr;  // guarded by write_mu
  // Guarded by the coordinator's mu_.
  State state = State::kJoined;
  std::string failure;
  v1::Failure::Kind failure_kind = v1::Failure::INTERNAL;
  std::string failure_hint;
  std::optional<v1::LifecycleResult> lifecycle;
  v1::Progress progress;
  int64_t vus = 0;
  std::string segment;
};

Coordinator::Coordinator(CoordinatorConfig config) : config_(std::move(config)) {}

Coordinator::~Coordinator() = default;

void Coordinator::Send(Agent& agent, const ControllerMessage& m) {
  std::lock_guard<std::mutex> lock(agent.write_mu);
  if (agent.stream != nullptr) agent.stream->Write(m);
}

grpc::Status Coordinator::Session(grpc::ServerContext* context,
                                  grpc::ServerReaderWriter<ControllerMessage, AgentMessage>* stream) {
  AgentMessage m;
  if (!stream->Read(&m) || !m.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of a session must be hello");
  }
  const v1::Hello& hello = m.hello();
  auto reject = [&](const std::string& reason) {
    barrage::Log(Severity::kWarning, absl::StrCat("refused agent '", hello.name(), "' from ", context->peer(), ": ", reason));
    ControllerMessage r;
    r.mutable_reject()->set_reason(reason);
    stream->Write(r);
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, reason);
  };
  if (hello.protocol_version() != kProtocolVersion) {
    return reject(absl::StrCat("protocol version mismatch: the agent speaks version ", hello.protocol_version(),
                               ", this controller speaks version ", kProtocolVersion));
  }
  if (!config_.token.empty() && !TokenMatches(config_.token, hello.token())) {
    return reject("wrong or missing token");
  }
  Agent* agent;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (ended_ || assigned_ || LiveAgentsLocked() >= config_.expected_agents) {
      const std::string why = ended_ ? "the test has ended"
                                     : absl::StrCat("the test already has its ", config_.expected_agents, " agents");
      lock.unlock();
      // Not the agent's fault: a long-running agent waits for the next test.
      barrage::Log(Severity::kWarning, absl::StrCat("turned away agent '", hello.name(), "': ", why));
      ControllerMessage r;
      r.mutable_reject()->set_reason(why);
      r.mutable_reject()->set_retryable(true);
      stream->Write(r);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why);
    }
    auto owned = std::make_unique<Agent>();
    owned->name = hello.name().empty() ? absl::StrCat("agent-", agents_.size() + 1) : hello.name();
    for (const auto& other : agents_) {
      if (other->name == owned->name) owned->name = absl::StrCat(owned->name, "-", agents_.size() + 1);
    }
    owned->capacity = hello.capacity() > 0 ? hello.capacity() : 1;
    owned->stream = stream;
    agent = owned.get();
    agents_.push_back(std::move(owned));
  }
  barrage::Log(config_.log_joins ? Severity::kInfo : Severity::kDebug,
               absl::StrCat("agent ", agent->name, " joined from ", context->peer()));
  ControllerMessage welcome;
  welcome.mutable_welcome()->set_name(agent->name);
  welcome.mutable_welcome()->set_controller_version(config_.controller_version);
  Send(*agent, welcome);
  cv_.notify_all();

  std::string why = "the connection closed";
  while (stream->Read(&m)) {
    std::unique_lock<std::mutex> lock(mu_);
    switch (m.msg_case()) {
      case AgentMessage::kReady:
        agent->state = Agent::State::kReady;
        agent->vus = m.ready().vus();
        if (exports_.empty()) exports_.assign(m.ready().exports().begin(), m.ready().exports().end());
        break;
      case AgentMessage::kFailure:
        agent->state = Agent::State::kFailed;
        agent->failure = m.failure().message();
        agent->failure_kind = m.failure().kind();
        agent->failure_hint = m.failure().hint();
        break;
      case AgentMessage::kLifecycleResult:
        agent->lifecycle = m.lifecycle_result();
        if (!m.lifecycle_result().abort_reason().empty() && !abort_reason_) {
          abort_reason_ = m.lifecycle_result().abort_reason();
        }
        break;
      case AgentMessage::kMetrics: {
        absl::Status st = metrics::MergeFromProto(m.metrics(), total_, config_.limits, absl::StrCat("agent ", agent->name));
        if (st.ok() && keep_intervals_) {
          st = metrics::MergeFromProto(m.metrics(), interval_, config_.limits, absl::StrCat("agent ", agent->name));
        }
        if (!st.ok()) {
          lock.unlock();
          barrage::Log(Severity::kError, st.message());
          lock.lock();
        }
        break;
      }
      case AgentMessage::kConsole: {
        const v1::ConsoleLine line = m.console();
        lock.unlock();
        static constexpr Severity kMap[] = {Severity::kDebug, Severity::kInfo, Severity::kWarning, Severity::kError};
        std::vector<std::pair<std::string, std::string>> fields;
        if (!line.source().empty()) fields.emplace_back("source", line.source());
        fields.emplace_back("agent", agent->name);
        barrage::Log(kMap[std::clamp(line.level(), 0, 3)], line.message(), fields);
        lock.lock();
        break;
      }
      case AgentMessage::kProgress:
        agent->progress = m.progress();
        break;
      case AgentMessage::kDone:
        agent->state = Agent::State::kDone;
        if (!m.done().abort_reason().empty() && !abort_reason_) abort_reason_ = m.done().abort_reason();
        if (m.done().test_failed()) test_failed_ = true;
        break;
      case AgentMessage::kHello:
        why = "a second hello";
        break;
      case AgentMessage::MSG_NOT_SET:
        break;
    }
    lock.unlock();
    cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> write_lock(agent->write_mu);
    agent->stream = nullptr;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (agent->state != Agent::State::kEnded && !ended_) {
    const bool working = agent->state != Agent::State::kDone && agent->state != Agent::State::kFailed;
    agent->state = Agent::State::kLost;
    if (working) {
      lost_.push_back(absl::StrCat(agent->name, " (at ",
                                   absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()), ": ", why, ")"));
    }
  }
  cv_.notify_all();
  return grpc::Status::OK;
}

int Coordinator::LiveAgentsLocked() const {
  int n = 0;
  for (const auto& a : agents_) n += a->state != Agent::State::kLost ? 1 : 0;
  return n;
}

int Coordinator::LiveAgents() const {
  std::lock_guard<std::mutex> lock(mu_);
  return LiveAgentsLocked();
}

bool Coordinator::WaitForAgents(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                      [&] { return LiveAgentsLocked() >= config_.expected_agents; });
}

absl::Status Coordinator::Assign(absl::Duration timeout, v1::Failure* failure) {
  failure->Clear();
  std::vector<Agent*> agents;
  {
    // Agents lost while others were joining have no part in the split.
    std::lock_guard<std::mutex> lock(mu_);
    assigned_ = true;
    for (auto& a : agents_) {
      if (a->state == Agent::State::kJoined) agents.push_back(a.get());
    }
  }
  if (static_cast<int>(agents.size()) < config_.expected_agents) {
    return absl::UnavailableError(absl::StrCat("only ", agents.size(), " of ", config_.expected_agents,
                                               " agents are still connected"));
  }
  // The split: one segment per agent, as long as its capacity says (whole
  // units; the sequence's rationals stay small).
  std::vector<int64_t> weights;
  for (Agent* a : agents) weights.push_back(std::max<int64_t>(1, static_cast<int64_t>(std::llround(a->capacity))));
  const int64_t total = std::accumulate(weights.begin(), weights.end(), int64_t{0});
  std::vector<Rational> points = {Rational(0)};
  int64_t sum = 0;
  for (int64_t w : weights) {
    sum += w;
    points.push_back(Rational(sum, total));
  }
  std::vector<std::string> texts;
  for (const Rational& p : points) texts.push_back(FormatRational(p));
  const std::string sequence = absl::StrJoin(texts, ",");
  for (size_t i = 0; i < agents.size(); ++i) {
    Agent& a = *agents[i];
    std::string segment = absl::StrCat(texts[i], ":", texts[i + 1]);
    std::string agent_sequence = sequence;
    if (!config_.fixed_segment.empty() || !config_.fixed_sequence.empty()) {
      segment = config_.fixed_segment;
      agent_sequence = config_.fixed_sequence;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      a.segment = segment;
      if (a.state != Agent::State::kJoined) {
        return absl::UnavailableError(absl::StrCat("agent ", a.name, " was lost while getting ready"));
      }
      a.state = Agent::State::kAssigned;
    }
    for (size_t at = 0; at < config_.archive.size(); at += config_.archive_chunk_bytes) {
      ControllerMessage chunk;
      chunk.mutable_archive_chunk()->set_data(config_.archive.substr(at, config_.archive_chunk_bytes));
      Send(a, chunk);
    }
    ControllerMessage m;
    v1::Assignment* as = m.mutable_assignment();
    as->set_run_id(absl::StrCat(absl::ToUnixMillis(absl::Now())));
    as->set_archive_size(config_.archive.size());
    as->set_execution_segment(segment);
    as->set_execution_segment_sequence(agent_sequence);
    as->set_options_json(config_.options_json);
    as->mutable_env()->insert(config_.env.begin(), config_.env.end());
    as->set_metrics_interval_ms(absl::ToInt64Milliseconds(config_.metrics_interval));
    as->set_threads(config_.threads);
    as->set_skip_vus_memory_check(!config_.vus_memory_check);
    Send(a, m);
  }
  std::unique_lock<std::mutex> lock(mu_);
  const bool settled = cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] {
    for (Agent* a : agents) {
      if (a->state == Agent::State::kAssigned) return false;
    }
    return true;
  });
  for (Agent* a : agents) {
    if (a->state == Agent::State::kFailed) {
      failure->set_kind(a->failure_kind);
      failure->set_message(a->failure);
      failure->set_hint(a->failure_hint);
      return absl::FailedPreconditionError(absl::StrCat("agent ", a->name, ": ", a->failure));
    }
    if (a->state == Agent::State::kLost) {
      return absl::UnavailableError(absl::StrCat("agent ", a->name, " was lost while getting ready"));
    }
  }
  if (!settled) {
    return absl::DeadlineExceededError(absl::StrCat("not every agent was ready within ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

bool Coordinator::Exports(const std::string& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::find(exports_.begin(), exports_.end(), fn) != exports_.end();
}

int64_t Coordinator::PlannedVus() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& a : agents_) n += a->vus;
  return n;
}

Coordinator::Agent* Coordinator::FirstLiveAgent() {
  for (auto& a : agents_) {
    if (a->state != Agent::State::kLost && a->state != Agent::State::kFailed) return a.get();
  }
  return nullptr;
}

absl::StatusOr<v1::LifecycleResult> Coordinator::RunLifecycle(const std::string& fn,
                                                              const std::optional<std::string>& data,
                                                              absl::Duration timeout, const std::string& summary_text,
                                                              const std::string& summary_text_color) {
  Agent* agent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    agent = FirstLiveAgent();
    if (agent == nullptr && fn == "handleSummary") {
      // After a VU's init failed (an exception, exec.test.abort()) k6 still
      // runs handleSummary(): the failed agent has the test, without VUs.
      for (auto& a : agents_) {
        if (a->state == Agent::State::kFailed &&
            (a->failure_kind == v1::Failure::SCRIPT || a->failure_kind == v1::Failure::ABORTED)) {
          agent = a.get();
          break;
        }
      }
    }
    if (agent == nullptr) return absl::UnavailableError(absl::StrCat("no agent left to run ", fn, "()"));
    agent->lifecycle.reset();
  }
  ControllerMessage m;
  m.mutable_run_lifecycle()->set_function(fn);
  m.mutable_run_lifecycle()->set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  m.mutable_run_lifecycle()->set_summary_text(summary_text);
  m.mutable_run_lifecycle()->set_summary_text_color(summary_text_color);
  if (data) {
    m.mutable_run_lifecycle()->set_has_data(true);
    m.mutable_run_lifecycle()->set_data_json(*data);
  }
  Send(*agent, m);
  std::unique_lock<std::mutex> lock(mu_);
  // The agent enforces the timeout; the extra margin covers the round trip.
  cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout + absl::Seconds(10)),
               [&] { return agent->lifecycle.has_value() || agent->state == Agent::State::kLost; });
  if (!agent->lifecycle) {
    return absl::UnavailableError(absl::StrCat("agent ", agent->name, " did not answer ", fn, "()"));
  }
  return *agent->lifecycle;
}

void Coordinator::Start(const std::optional<std::string>& setup_data, absl::Time at) {
  ControllerMessage m;
  m.mutable_start()->set_start_unix_ns(absl::ToUnixNanos(at));
  if (setup_data) {
    m.mutable_start()->set_has_setup_data(true);
    m.mutable_start()->set_setup_data_json(*setup_data);
  }
  std::vector<Agent*> agents;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& a : agents_) {
      if (a->state == Agent::State::kReady) {
        a->state = Agent::State::kRunning;
        agents.push_back(a.get());
      }
    }
  }
  for (Agent* a : agents) Send(*a, m);
}

void Coordinator::Stop(const std::string& reason) {
  ControllerMessage m;
  m.mutable_stop()->set_reason(reason);
  std::vector<Agent*> agents;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& a : agents_) agents.push_back(a.get());
  }
  for (Agent* a : agents) Send(*a, m);
}

void Coordinator::End() {
  ControllerMessage m;
  m.mutable_end();
  std::vector<Agent*> agents;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    for (auto& a : agents_) {
      if (a->state != Agent::State::kLost) a->state = Agent::State::kEnded;
      agents.push_back(a.get());
    }
  }
  for (Agent* a : agents) Send(*a, m);
}

bool Coordinator::AllDone() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& a : agents_) {
    if (a->state == Agent::State::kRunning) return false;
  }
  return true;
}

std::vector<std::string> Coordinator::TakeLost() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(lost_, {});
}

std::optional<std::string> Coordinator::abort_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return abort_reason_;
}

bool Coordinator::test_failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return test_failed_;
}

RunProgress Coordinator::Progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  RunProgress p;
  std::map<std::string, int> counts;
  for (const auto& a : agents_) {
    if (a->state == Agent::State::kLost || a->state == Agent::State::kFailed) continue;
    p.agents++;
    p.vus_active += a->progress.vus_active();
    p.vus_max += std::max(a->progress.vus_max(), a->vus);
    p.iterations_completed += a->progress.iterations_completed();
    p.iterations_interrupted += a->progress.iterations_interrupted();
    for (const v1::ScenarioProgress& sp : a->progress.scenarios()) {
      auto it = std::find_if(p.scenarios.begin(), p.scenarios.end(),
                             [&](const ScenarioRunProgress& x) { return x.name == sp.name(); });
      if (it == p.scenarios.end()) {
        p.scenarios.push_back({sp.name(), 0, 0, 0, true});
        it = p.scenarios.end() - 1;
      }
      it->vus_active += sp.vus_active();
      it->iterations_completed += sp.iterations_completed();
      it->progress += sp.progress();  // summed here, divided below
      it->done = it->done && sp.done();
      counts[sp.name()]++;
    }
  }
  for (ScenarioRunProgress& sp : p.scenarios) sp.progress /= std::max(1, counts[sp.name]);
  std::sort(p.scenarios.begin(), p.scenarios.end(),
            [](const ScenarioRunProgress& a, const ScenarioRunProgress& b) { return a.name < b.name; });
  return p;
}

std::vector<AgentSummary> Coordinator::Agents() const {
  static constexpr const char* kStates[] = {"joined", "assigned", "ready", "failed", "running", "done", "lost", "ended"};
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AgentSummary> out;
  for (const auto& a : agents_) {
    out.push_back({a->name, a->vus, a->progress.iterations_completed(), a->progress.iterations_interrupted(),
                   kStates[static_cast<int>(a->state)], a->segment});
  }
  return out;
}

void Coordinator::KeepIntervals() {
  std::lock_guard<std::mutex> lock(mu_);
  keep_intervals_ = true;
}

void Coordinator::TakeInterval(metrics::MetricStore& into) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, def] : interval_.defs()) (void)into.Define(def);
  (void)into.Merge(interval_);
  interval_.Clear();
}

void Coordinator::WithMetrics(const std::function<void(metrics::MetricStore&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  fn(total_);
}

}  // namespace barrage::controller
