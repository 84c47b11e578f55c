#include "controller/coordinator.h"

#include <openssl/crypto.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/execution_segment.h"
#include "common/log.h"
#include "common/tsan_annotations.h"

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

// Texts from agents reach the operator's terminal: control characters
// (escape sequences that clear the screen or retitle the window, C1
// controls, bytes that are no UTF-8) are shown as \xNN; newlines and tabs
// stay in multi-line texts (stack traces). Cut at max_bytes.
std::string Sanitize(const std::string& text, size_t max_bytes, bool keep_newlines = true) {
  std::string out;
  const size_t n = std::min(text.size(), max_bytes);
  auto escape = [&out](unsigned char c) { absl::StrAppend(&out, absl::StrFormat("\\x%02x", c)); };
  for (size_t i = 0; i < n;) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c >= 0x20 && c != 0x7f && c != '\\') || (keep_newlines && (c == '\n' || c == '\t'))) {
        out.push_back(static_cast<char>(c));
      } else if (c == '\\' && keep_newlines) {
        out.push_back('\\');
      } else {
        escape(c);
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence of 2 to 4 bytes passes, except C1
    // controls (U+0080..U+009F, encoded C2 80..C2 9F).
    const size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (ok && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0) ok = false;
    if (ok) {
      out.append(text, i, len);
      i += len;
    } else {
      escape(c);
      ++i;
    }
  }
  if (text.size() > max_bytes) absl::StrAppend(&out, "... (", text.size() - max_bytes, " more bytes)");
  return out;
}

// Agent names: one line, no spaces (they are logfmt field values), 64 bytes.
std::string SanitizeName(const std::string& name) {
  std::string out;
  for (unsigned char c : name.substr(0, 64)) {
    if (c > 0x20 && c < 0x7f && c != '\\' && c != '"' && c != '=') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", c));
    }
  }
  return out;
}

std::string Clock() { return absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()); }

// Progress counters: far beyond any real run, far from an overflow of the
// sums over agents.
constexpr int64_t kMaxProgressCount = int64_t{1} << 53;

}  // namespace

struct Coordinator::Agent {
  enum class State { kJoined, kAssigned, kReady, kFailed, kRunning, kDone, kLost, kEnded };
  std::string name;
  double capacity = 1;
  // Guarded by the coordinator's mu_.
  State state = State::kJoined;
  bool connected = true;  // the stream is there
  std::string failure;
  v1::Failure::Kind failure_kind = v1::Failure::INTERNAL;
  std::string lifecycle_pending;  // the function asked for and not answered yet
  std::string failure_hint;
  std::optional<v1::LifecycleResult> lifecycle;
  v1::Progress progress;
  int64_t vus = 0;
  std::string segment;
  absl::Time last_seen;
  std::string lost_at;  // HH:MM:SS
  std::string lost_why;

  // The outgoing queue, guarded by out_mu. The reactor writes the front;
  // reactor is null once the stream is finished.
  std::mutex out_mu;
  std::condition_variable out_cv;
  std::deque<ControllerMessage> outbox;
  size_t queued_bytes = 0;
  bool writing = false;
  bool broken = false;  // a write failed or the stream is done: nothing more goes out
  std::optional<grpc::Status> finish_wanted;  // finish once the queue is empty
  SessionReactor* reactor = nullptr;
};

// One agent session. Lives from the stream's start to OnDone, which
// deletes it; the Agent it serves lives on in the coordinator.
class Coordinator::SessionReactor final : public grpc::ServerBidiReactor<AgentMessage, ControllerMessage> {
 public:
  SessionReactor(Coordinator& coordinator, grpc::CallbackServerContext* context)
      : c_(coordinator), context_(context), peer_(context->peer()), started_(absl::Now()) {
    HappensBefore(this);  // constructed before OnCancel and OnDone
    if (c_.Admit(this)) {
      HappensBefore(&in_);  // this thread's writes, then OnReadDone (common/tsan_annotations.h)
      StartRead(&in_);
    } else {
      FinishOnce(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "too many sessions are waiting to authenticate; try again later"));
    }
  }

  const std::string& peer() const { return peer_; }
  absl::Time started() const { return started_; }

  // Ends the stream now. Any thread; once.
  void FinishOnce(const grpc::Status& status) {
    if (finished_.exchange(true)) return;
    HappensBefore(this);  // what the finishing thread did, then OnDone
    Finish(status);
  }
  // Refuses the peer: Reject, then the status, in one operation.
  void Reject(const std::string& reason, bool retryable, grpc::StatusCode code) {
    if (finished_.exchange(true)) return;
    reject_.mutable_reject()->set_reason(reason);
    reject_.mutable_reject()->set_retryable(retryable);
    HappensBefore(this);
    StartWriteAndFinish(&reject_, grpc::WriteOptions(), grpc::Status(code, reason));
  }
  // Ends the stream once what is queued for the agent is written (at once
  // when nothing is, or when the stream is broken). agent.out_mu held.
  void FinishAfterWritesLocked(Agent& agent, const grpc::Status& status) {
    if (agent.writing && !agent.broken) {
      // An error (a protocol violation) wins over the OK of End: the two
      // may cross when the CLI ends the run at once on the agent's loss.
      if (!agent.finish_wanted || agent.finish_wanted->ok()) agent.finish_wanted = status;
      return;
    }
    FinishOnce(status);
  }
  // Starts writing the queue's front if no write is under way. out_mu held.
  void PumpLocked(Agent& agent) {
    if (agent.writing || agent.broken || agent.outbox.empty() || finished_) return;
    agent.writing = true;
    HappensBefore(&agent_);  // the queued message (and agent_), then OnWriteDone
    StartWrite(&agent.outbox.front());
  }
  void Cancel() { context_->TryCancel(); }
  // Set by OnHello before the first write is started: OnWriteDone may run
  // on another thread as soon as it is.
  void set_agent(Agent* agent) { agent_ = agent; }

  void OnReadDone(bool ok) override {
    HappensAfter(&in_);
    Reaction reaction(this);
    if (!ok) {
      // The agent closed its side, or the stream broke. Recorded in OnDone,
      // when gRPC has said whether it was cancelled.
      read_cancelled_ = context_->IsCancelled();
      EndAfterWrites(grpc::Status::OK);
      return;
    }
    if (agent_ == nullptr) {
      if (!in_.has_hello()) {
        c_.Forget(this);
        FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of a session must be hello"));
        return;
      }
      Agent* agent = nullptr;
      const HelloOutcome outcome = c_.OnHello(this, in_.hello(), &agent);
      if (outcome != HelloOutcome::kWelcome) return;  // refused, or past the hello deadline
    } else {
      const absl::Status st = c_.OnMessage(*agent_, in_);
      if (!st.ok()) {
        EndAfterWrites(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(st.message())));
        return;
      }
    }
    if (!finished_) {
      HappensBefore(&in_);
      StartRead(&in_);
    }
  }

  void OnWriteDone(bool ok) override {
    HappensAfter(&agent_);
    Reaction reaction(this);
    std::lock_guard<std::mutex> lock(agent_->out_mu);
    Agent& a = *agent_;
    a.writing = false;
    if (!a.outbox.empty()) {
      a.queued_bytes -= a.outbox.front().ByteSizeLong();
      a.outbox.pop_front();
    }
    if (!ok) {
      a.broken = true;
      a.outbox.clear();
      a.queued_bytes = 0;
    }
    if (a.finish_wanted && (a.outbox.empty() || a.broken)) {
      FinishOnce(*a.finish_wanted);
    } else {
      PumpLocked(a);
    }
    a.out_cv.notify_all();
  }

  void OnCancel() override {
    HappensAfter(this);  // constructed before
    cancelled_ = true;
    HappensBefore(this);
  }

  void OnDone() override {
    HappensAfter(this);  // gRPC calls OnDone after every other reaction has returned
    if (agent_ != nullptr) {
      {
        std::lock_guard<std::mutex> lock(agent_->out_mu);
        agent_->reactor = nullptr;
        agent_->broken = true;
        agent_->outbox.clear();
        agent_->queued_bytes = 0;
        agent_->out_cv.notify_all();
      }
      c_.OnStreamEnd(*agent_, cancelled_ || read_cancelled_);
    } else {
      c_.Forget(this);
    }
    delete this;
  }

 private:
  // Each reaction happens before OnDone, as gRPC promises (its own
  // synchronisation is invisible to ThreadSanitizer: common/tsan_annotations.h).
  struct Reaction {
    explicit Reaction(SessionReactor* r) : r(r) {}
    ~Reaction() { HappensBefore(r); }
    SessionReactor* r;
  };

  void EndAfterWrites(const grpc::Status& status) {
    if (agent_ == nullptr) {
      FinishOnce(status);
      return;
    }
    std::lock_guard<std::mutex> lock(agent_->out_mu);
    FinishAfterWritesLocked(*agent_, status);
  }

  Coordinator& c_;
  grpc::CallbackServerContext* context_;
  const std::string peer_;
  const absl::Time started_;
  AgentMessage in_;
  ControllerMessage reject_;
  Agent* agent_ = nullptr;  // set once authenticated; the reactor's callbacks only
  std::atomic<bool> finished_{false};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> read_cancelled_{false};
};

Coordinator::Coordinator(CoordinatorConfig config) : config_(std::move(config)) {
  housekeeping_ = std::thread([this] { Housekeeping(); });
}

Coordinator::~Coordinator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  housekeeping_cv_.notify_all();
  housekeeping_.join();
}

grpc::ServerBidiReactor<AgentMessage, ControllerMessage>* Coordinator::Session(grpc::CallbackServerContext* context) {
  return new SessionReactor(*this, context);
}

void Coordinator::Housekeeping() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    housekeeping_cv_.wait_for(lock, std::chrono::milliseconds(200));
    const absl::Time now = absl::Now();
    for (auto it = unauthenticated_.begin(); it != unauthenticated_.end();) {
      if (now - (*it)->started() < config_.hello_timeout) {
        ++it;
        continue;
      }
      // Finished here, forgotten here: OnDone (which deletes the reactor)
      // takes mu_ first, so the pointer is good while it is in the set.
      (*it)->FinishOnce(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                     absl::StrCat("no hello within ", absl::FormatDuration(config_.hello_timeout))));
      it = unauthenticated_.erase(it);
    }
  }
}

bool Coordinator::Admit(SessionReactor* r) {
  std::lock_guard<std::mutex> lock(mu_);
  // All the expected agents may knock at once (agent_swarm's 1,000 do).
  const size_t cap = std::max(config_.max_unauthenticated, 2 * static_cast<size_t>(std::max(0, config_.expected_agents)));
  if (unauthenticated_.size() >= cap) return false;
  unauthenticated_.insert(r);
  return true;
}

void Coordinator::Forget(SessionReactor* r) {
  std::lock_guard<std::mutex> lock(mu_);
  unauthenticated_.erase(r);
}

Coordinator::HelloOutcome Coordinator::OnHello(SessionReactor* r, const v1::Hello& hello, Agent** out) {
  const std::string name = SanitizeName(hello.name());
  std::string refusal;
  bool retryable = false;
  grpc::StatusCode code = grpc::StatusCode::PERMISSION_DENIED;
  Agent* agent = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Past the hello deadline, the housekeeping thread finished it already.
    if (unauthenticated_.erase(r) == 0) return HelloOutcome::kGone;
    // Authentication first: an unauthenticated peer learns nothing else.
    if (!config_.token.empty() && !TokenMatches(config_.token, hello.token())) {
      refusal = "wrong or missing token";
    } else if (hello.protocol_version() != kProtocolVersion) {
      refusal = absl::StrCat("protocol version mismatch: the agent speaks version ", hello.protocol_version(),
                             ", this controller speaks version ", kProtocolVersion);
    } else if (!(hello.capacity() <= 1000) || hello.capacity() < 0) {  // NaN fails the first test
      code = grpc::StatusCode::INVALID_ARGUMENT;
      refusal = absl::StrCat("capacity ", hello.capacity(), " is outside (0, 1000]: it weighs the agent's share");
    } else if (ended_ || assigned_ || LiveAgentsLocked() >= config_.expected_agents) {
      // Not the agent's fault: a long-running agent waits for the next test.
      retryable = true;
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      refusal = ended_ ? "the test has ended"
                       : absl::StrCat("the test already has its ", config_.expected_agents, " agents");
    } else {
      auto owned = std::make_unique<Agent>();
      owned->name = name.empty() ? absl::StrCat("agent-", agents_.size() + 1) : name;
      for (const auto& other : agents_) {
        if (other->name == owned->name) owned->name = absl::StrCat(owned->name, "-", agents_.size() + 1);
      }
      owned->capacity = hello.capacity() > 0 ? hello.capacity() : 1;
      owned->last_seen = absl::Now();
      owned->reactor = r;
      // Before anyone else can see the agent: Welcome is its first message
      // (the CLI may queue the archive as soon as the agent is listed), and
      // the reactor knows its agent before any write completes.
      ControllerMessage welcome;
      welcome.mutable_welcome()->set_name(owned->name);
      welcome.mutable_welcome()->set_controller_version(config_.controller_version);
      owned->queued_bytes = welcome.ByteSizeLong();
      owned->outbox.push_back(std::move(welcome));
      r->set_agent(owned.get());
      agent = owned.get();
      agents_.push_back(std::move(owned));
    }
  }
  if (agent == nullptr) {
    barrage::Log(Severity::kWarning, absl::StrCat(retryable ? "turned away agent '" : "refused agent '", name,
                                                  "' from ", r->peer(), ": ", refusal));
    r->Reject(refusal, retryable, code);
    return HelloOutcome::kRejected;
  }
  barrage::Log(config_.log_joins ? Severity::kInfo : Severity::kDebug,
               absl::StrCat("agent ", agent->name, " joined from ", r->peer()));
  *out = agent;
  {
    std::lock_guard<std::mutex> lock(agent->out_mu);
    r->PumpLocked(*agent);
  }
  cv_.notify_all();
  return HelloOutcome::kWelcome;
}

bool Coordinator::Send(Agent& a, ControllerMessage m) {
  std::unique_lock<std::mutex> lock(a.out_mu);
  const bool room = a.out_cv.wait_for(lock, absl::ToChronoMilliseconds(config_.send_timeout), [&] {
    return a.reactor == nullptr || a.broken || a.queued_bytes < config_.max_queued_bytes;
  });
  if (a.reactor == nullptr || a.broken || a.finish_wanted) return false;
  if (!room) {
    // It answers keepalive pings but reads nothing: no test can go on so.
    // Lost first, then cancelled: the cancel ends in OnDone on a gRPC
    // thread, whose OnStreamEnd would otherwise often be first to call it
    // lost, as "the connection was closed or reset", hiding the reason.
    lock.unlock();
    {
      std::lock_guard<std::mutex> state_lock(mu_);
      LoseLocked(a, absl::StrCat("it read nothing of what it was sent for ", absl::FormatDuration(config_.send_timeout)));
    }
    lock.lock();
    // Under out_mu, which keeps the reactor alive (OnDone clears the pointer
    // under it before deleting itself). TryCancel never runs our reactions
    // inline: gRPC runs OnDone and OnCancel of a reactor that is not
    // inlineable on its executor, and other reactions on its own threads.
    if (a.reactor != nullptr) a.reactor->Cancel();
    return false;
  }
  a.queued_bytes += m.ByteSizeLong();
  a.outbox.push_back(std::move(m));
  a.reactor->PumpLocked(a);
  return true;
}

void Coordinator::LoseLocked(Agent& a, const std::string& why) {
  if (a.state == Agent::State::kLost) return;
  a.state = Agent::State::kLost;
  a.lost_at = Clock();
  a.lost_why = why;
  lost_.push_back(a.name);
  cv_.notify_all();
}

absl::Status Coordinator::OnMessage(Agent& a, const AgentMessage& m) {
  using State = Agent::State;
  std::unique_lock<std::mutex> lock(mu_);
  a.last_seen = absl::Now();
  std::string violation;
  const bool before_start = a.state == State::kJoined || a.state == State::kAssigned || a.state == State::kReady;
  auto out_of_turn = [&](const char* what) {
    return absl::StrCat(what, before_start                 ? " before the test started"
                              : a.state == State::kDone    ? " after done"
                              : a.state == State::kRunning ? " while running"
                                                           : " after the test ended");
  };
  switch (m.msg_case()) {
    case AgentMessage::kHeartbeat:
    case AgentMessage::MSG_NOT_SET:  // a newer agent's message: nothing to do with it
      return absl::OkStatus();
    case AgentMessage::kConsole: {
      const v1::ConsoleLine& line = m.console();
      const std::string text = Sanitize(line.message(), config_.max_text_bytes);
      const std::string source = SanitizeName(line.source().substr(0, 32));
      const std::string name = a.name;
      lock.unlock();
      static constexpr Severity kMap[] = {Severity::kDebug, Severity::kInfo, Severity::kWarning, Severity::kError};
      std::vector<std::pair<std::string, std::string>> fields;
      if (!source.empty()) fields.emplace_back("source", source);
      fields.emplace_back("agent", name);
      barrage::Log(kMap[std::clamp(line.level(), 0, 3)], text, fields);
      return absl::OkStatus();
    }
    case AgentMessage::kReady: {
      const v1::Ready& ready = m.ready();
      if (a.state != State::kAssigned) {
        violation = a.state == State::kJoined ? "ready before the assignment" : out_of_turn("ready");
      } else if (ready.vus() < 0 || (config_.max_vus > 0 && ready.vus() > config_.max_vus)) {
        violation = absl::StrCat("ready: ", ready.vus(), " VUs, beyond the test's ", config_.max_vus);
      } else {
        for (const std::string& e : ready.exports()) {
          if (e != "setup" && e != "teardown" && e != "handleSummary") {
            violation = absl::StrCat("ready: an unknown export '", SanitizeName(e), "'");
          }
        }
      }
      if (!violation.empty()) break;
      a.state = State::kReady;
      a.vus = ready.vus();
      if (exports_.empty()) exports_.assign(ready.exports().begin(), ready.exports().end());
      break;
    }
    case AgentMessage::kFailure:
      if (a.state != State::kJoined && a.state != State::kAssigned) {
        violation = out_of_turn("a failure report");
        break;
      }
      a.state = State::kFailed;
      a.failure = Sanitize(m.failure().message(), config_.max_text_bytes);
      a.failure_kind = m.failure().kind();
      a.failure_hint = Sanitize(m.failure().hint(), config_.max_text_bytes);
      break;
    case AgentMessage::kLifecycleResult: {
      const v1::LifecycleResult& r = m.lifecycle_result();
      if (a.lifecycle_pending.empty() || r.function() != a.lifecycle_pending) {
        violation = absl::StrCat("a result of ", SanitizeName(r.function().substr(0, 32)),
                                 "() it was not asked to run");
        break;
      }
      a.lifecycle_pending.clear();
      v1::LifecycleResult kept = r;
      kept.set_error(Sanitize(r.error(), config_.max_text_bytes));
      kept.set_abort_reason(Sanitize(r.abort_reason(), config_.max_text_bytes));
      if (!kept.abort_reason().empty() && !abort_reason_) abort_reason_ = kept.abort_reason();
      a.lifecycle = std::move(kept);
      break;
    }
    case AgentMessage::kMetrics: {
      // Setup's and teardown's samples come while their call is pending.
      if (a.state != State::kRunning && a.lifecycle_pending.empty()) {
        violation = out_of_turn("metrics");
        break;
      }
      const uint64_t dropped_before = dropped_.dropped_series + dropped_.dropped_samples;
      const absl::Status st = metrics::MergeFromProto(m.metrics(), total_, config_.limits, "", &dropped_);
      if (!st.ok()) {
        violation = std::string(st.message());
        break;
      }
      if (dropped_.dropped_series + dropped_.dropped_samples > dropped_before && !drop_warned_) {
        drop_warned_ = true;
        const std::string warning =
            absl::StrCat(dropped_.why, " was reached: new series are dropped and counted (first: ",
                         Sanitize(dropped_.first_dropped, 200, false), "); every existing series stays exact");
        lock.unlock();
        barrage::Log(Severity::kWarning, warning);
        lock.lock();
      }
      break;
    }
    case AgentMessage::kRawSamples: {
      if (!config_.raw_samples) {
        violation = "raw samples it was not asked for";
        break;
      }
      if (a.state != State::kRunning && a.lifecycle_pending.empty()) {
        violation = out_of_turn("raw samples");
        break;
      }
      // Queued by the outputs, not merged here: no reason to hold mu_.
      lock.unlock();
      const absl::Status st = config_.raw_samples(m.raw_samples());
      lock.lock();
      if (!st.ok()) violation = absl::StrCat("raw samples: ", st.message());
      break;
    }
    case AgentMessage::kProgress: {
      if (a.state != State::kRunning) {
        violation = out_of_turn("progress");
        break;
      }
      const v1::Progress& p = m.progress();
      const int64_t vus_cap = config_.max_vus > 0 ? config_.max_vus : kMaxProgressCount;
      if (p.vus_active() < 0 || p.vus_max() < 0 || p.iterations_completed() < 0 || p.iterations_interrupted() < 0) {
        violation = "progress: a negative count";
      } else if (p.vus_max() > vus_cap) {
        violation = absl::StrCat("progress: vus_max ", p.vus_max(), " beyond the test's ", vus_cap, " VUs");
      } else if (p.vus_active() > p.vus_max()) {
        violation = absl::StrCat("progress: vus_active ", p.vus_active(), " > vus_max ", p.vus_max());
      } else if (p.iterations_completed() > kMaxProgressCount || p.iterations_interrupted() > kMaxProgressCount) {
        violation = "progress: iteration counts beyond 2^53";
      } else if (p.iterations_completed() < a.progress.iterations_completed() ||
                 p.iterations_interrupted() < a.progress.iterations_interrupted()) {
        violation = absl::StrCat("progress: iteration counts went back (", a.progress.iterations_completed(), " to ",
                                 p.iterations_completed(), " completed)");
      } else if (p.scenarios_size() > (config_.scenarios.empty() ? 1000 : static_cast<int>(config_.scenarios.size()))) {
        violation = absl::StrCat("progress: ", p.scenarios_size(), " scenarios");
      } else {
        for (const v1::ScenarioProgress& sp : p.scenarios()) {
          const std::string shown = SanitizeName(sp.name().substr(0, 64));
          if (config_.scenarios.empty() ? sp.name().size() > 128 || shown != sp.name()
                                        : !config_.scenarios.contains(sp.name())) {
            violation = absl::StrCat("progress: an unknown scenario '", shown, "'");
          } else if (!(sp.progress() >= 0 && sp.progress() <= 1)) {
            violation = absl::StrCat("progress: scenario ", shown, " at ", sp.progress(), ", outside [0, 1]");
          } else if (sp.vus_active() < 0 || sp.vus_active() > p.vus_max() || sp.iterations_completed() < 0 ||
                     sp.iterations_completed() > kMaxProgressCount) {
            violation = absl::StrCat("progress: scenario ", shown, " counts out of bounds");
          }
          if (!violation.empty()) break;
        }
      }
      if (violation.empty()) a.progress = p;
      break;
    }
    case AgentMessage::kDone:
      if (a.state != State::kRunning) {
        violation = a.state == State::kDone ? "a second done" : out_of_turn("done");
        break;
      }
      a.state = State::kDone;
      if (!m.done().abort_reason().empty() && !abort_reason_) {
        abort_reason_ = Sanitize(m.done().abort_reason(), config_.max_text_bytes);
      }
      if (m.done().test_failed()) test_failed_ = true;
      if (!m.done().left_early().empty()) {
        // Everything it measured came before Done; the test just lost its
        // share from here on, which the run must say.
        a.lost_at = Clock();
        a.lost_why = absl::StrCat("it left early: ", Sanitize(m.done().left_early(), 200, false),
                                  "; everything it measured is kept");
        lost_.push_back(a.name);
      }
      break;
    case AgentMessage::kHello:
      violation = "a second hello";
      break;
  }
  if (violation.empty()) {
    lock.unlock();
    cv_.notify_all();
    return absl::OkStatus();
  }
  const std::string name = a.name;
  LoseLocked(a, absl::StrCat("it broke the protocol: ", violation));
  lock.unlock();
  barrage::Log(Severity::kError, absl::StrCat("agent ", name, " broke the protocol: ", violation,
                                              "; its session is closed and it counts as lost"));
  return absl::InvalidArgumentError(violation);
}

void Coordinator::OnStreamEnd(Agent& a, bool cancelled) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!a.connected) return;
  a.connected = false;
  const bool working = a.state == Agent::State::kJoined || a.state == Agent::State::kAssigned ||
                       a.state == Agent::State::kReady || a.state == Agent::State::kRunning;
  if (!ended_ && working) {
    // gRPC tells the server no transport error, but agents speak every
    // second (Heartbeat): a stream cancelled after seconds of silence died
    // of keepalive; one cancelled right after a message was closed or reset.
    const absl::Duration silent = absl::Now() - a.last_seen;
    std::string why;
    if (!cancelled) {
      why = "the agent closed its session before the test's end";
    } else if (silent >= absl::Milliseconds(2500)) {
      why = absl::StrFormat("no sign of life for %.1fs: keepalive timeout (its host or the network went away, "
                            "or the process is frozen)",
                            absl::ToDoubleSeconds(silent));
    } else {
      why = "the connection was closed or reset (the agent process ended, or the network dropped the connection)";
    }
    LoseLocked(a, why);
  }
  cv_.notify_all();
}

int Coordinator::LiveAgentsLocked() const {
  int n = 0;
  for (const auto& a : agents_) n += a->state != Agent::State::kLost && a->connected ? 1 : 0;
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
      if (a->state == Agent::State::kJoined && a->connected) agents.push_back(a.get());
    }
  }
  if (static_cast<int>(agents.size()) < config_.expected_agents) {
    return absl::UnavailableError(absl::StrCat("only ", agents.size(), " of ", config_.expected_agents,
                                               " agents are still connected"));
  }
  auto lost_while_getting_ready = [this](Agent& a) {
    std::string why;
    {
      std::lock_guard<std::mutex> lock(mu_);
      why = a.lost_why;
    }
    std::string text = absl::StrCat("agent ", a.name, " was lost while getting ready");
    if (!why.empty()) absl::StrAppend(&text, ": ", why);
    if (config_.describe_lost) {
      const std::string more = config_.describe_lost(a.name);
      if (!more.empty()) absl::StrAppend(&text, "; ", more);
    }
    return absl::UnavailableError(text);
  };
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
      if (a.state != Agent::State::kJoined) break;  // lost: said below
      a.state = Agent::State::kAssigned;
    }
    for (size_t at = 0; at < config_.archive.size(); at += config_.archive_chunk_bytes) {
      ControllerMessage chunk;
      chunk.mutable_archive_chunk()->set_data(config_.archive.substr(at, config_.archive_chunk_bytes));
      if (!Send(a, std::move(chunk))) break;
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
    as->set_raw_samples(static_cast<bool>(config_.raw_samples));
    Send(a, std::move(m));
  }
  std::unique_lock<std::mutex> lock(mu_);
  const int signals_before = StopSignals();
  const bool settled = WaitInterruptibly(lock, timeout, signals_before, [&] {
    for (Agent* a : agents) {
      if (a->state == Agent::State::kAssigned || a->state == Agent::State::kJoined) {
        if (a->connected) return false;
      }
    }
    return true;
  });
  if (StopSignals() > signals_before) {
    return absl::CancelledError("stopped by a signal while the agents were initializing their VUs");
  }
  for (Agent* a : agents) {
    if (a->state == Agent::State::kFailed) {
      failure->set_kind(a->failure_kind);
      failure->set_message(a->failure);
      failure->set_hint(a->failure_hint);
      return absl::FailedPreconditionError(absl::StrCat("agent ", a->name, ": ", a->failure));
    }
    if (a->state == Agent::State::kLost || !a->connected) {
      lock.unlock();
      return lost_while_getting_ready(*a);
    }
  }
  if (!settled) {
    return absl::DeadlineExceededError(absl::StrCat("not every agent was ready within ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

int Coordinator::StopSignals() const { return config_.stop_signals ? config_.stop_signals() : 0; }

bool Coordinator::WaitInterruptibly(std::unique_lock<std::mutex>& lock, absl::Duration timeout, int signals_before,
                                    const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + timeout;
  // In slices: a signal handler can only bump a counter, not notify cv_.
  while (!done()) {
    if (StopSignals() > signals_before) return false;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    cv_.wait_for(lock, absl::ToChronoMilliseconds(std::min(left, absl::Milliseconds(100))));
  }
  return true;
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
    if (a->state != Agent::State::kLost && a->state != Agent::State::kFailed && a->connected) return a.get();
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
    agent->lifecycle_pending = fn;
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
  const int signals_before = StopSignals();
  Send(*agent, std::move(m));
  std::unique_lock<std::mutex> lock(mu_);
  auto answered = [&] {
    return agent->lifecycle.has_value() || agent->state == Agent::State::kLost || !agent->connected;
  };
  // The agent enforces the timeout; the extra margin covers the round trip.
  if (!WaitInterruptibly(lock, timeout + absl::Seconds(10), signals_before, answered)) {
    if (StopSignals() > signals_before && !answered()) {
      // A signal: the agent interrupts the function (as k6 interrupts
      // setup()) and answers with the error; it gets a moment for that.
      lock.unlock();
      ControllerMessage stop;
      stop.mutable_stop()->set_reason("stopped by the user");
      Send(*agent, std::move(stop));
      lock.lock();
      cv_.wait_for(lock, std::chrono::seconds(10), answered);
    }
  }
  agent->lifecycle_pending.clear();
  if (!agent->lifecycle) {
    std::string text = absl::StrCat("agent ", agent->name, " did not answer ", fn, "()");
    if (!agent->lost_why.empty()) absl::StrAppend(&text, ": ", agent->lost_why);
    return absl::UnavailableError(text);
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
      // A lost agent's stream is gone, or being ended with its error.
      if (a->state == Agent::State::kLost) continue;
      a->state = Agent::State::kEnded;
      agents.push_back(a.get());
    }
  }
  for (Agent* a : agents) {
    Send(*a, m);
    // The stream ends once End is written; the agent closes its side too.
    std::lock_guard<std::mutex> lock(a->out_mu);
    if (a->reactor != nullptr) a->reactor->FinishAfterWritesLocked(*a, grpc::Status::OK);
  }
}

bool Coordinator::AllDone() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& a : agents_) {
    if (a->state == Agent::State::kRunning) return false;
  }
  return true;
}

std::vector<std::string> Coordinator::TakeLost() {
  std::vector<std::pair<std::string, std::string>> lost;  // name, entry
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& name : std::exchange(lost_, {})) {
      for (const auto& a : agents_) {
        if (a->name == name) lost.emplace_back(name, absl::StrCat(name, " (at ", a->lost_at, ": ", a->lost_why));
      }
    }
  }
  std::vector<std::string> out;
  for (auto& [name, entry] : lost) {
    if (config_.describe_lost) {
      const std::string more = config_.describe_lost(name);
      if (!more.empty()) absl::StrAppend(&entry, "; ", more);
    }
    out.push_back(entry + ")");
  }
  return out;
}

std::optional<std::string> Coordinator::abort_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return abort_reason_;
}

bool Coordinator::test_failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return test_failed_;
}

metrics::MergeReport Coordinator::Dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  metrics::MergeReport out = dropped_;
  out.first_dropped = Sanitize(out.first_dropped, 200, false);
  return out;
}

RunProgress Coordinator::Progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  RunProgress p;
  std::map<std::string, int> counts;
  for (const auto& a : agents_) {
    if (a->state == Agent::State::kLost || a->state == Agent::State::kFailed) continue;
    p.agents += a->connected ? 1 : 0;
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

void Coordinator::WithMetrics(const std::function<void(metrics::MetricStore&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  fn(total_);
}

}  // namespace barrage::controller
