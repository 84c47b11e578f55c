#include "agent/session.h"

#include <grpcpp/client_context.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/engine.h"
#include "common/vu_memory.h"
#include "agent/js/runtime.h"
#include "barrage/v1/control.grpc.pb.h"
#include "common/archive.h"
#include "common/log.h"
#include "common/metrics/wire.h"
#include "common/options.h"
#include "common/scenario_share.h"

namespace barrage::agent {
namespace {

using v1::AgentMessage;
using v1::ControllerMessage;

// The progress report of an interval; the final one, sent after the run,
// has no VU active and every scenario done.
AgentMessage ProgressMessage(const EngineProgress& p, bool final) {
  AgentMessage m;
  v1::Progress* out = m.mutable_progress();
  out->set_vus_active(final ? 0 : p.vus_active);
  out->set_vus_max(p.vus_max);
  out->set_iterations_completed(p.iterations_completed);
  out->set_iterations_interrupted(p.iterations_interrupted);
  for (const ScenarioProgress& sp : p.scenarios) {
    v1::ScenarioProgress* s = out->add_scenarios();
    s->set_name(sp.name);
    s->set_vus_active(final ? 0 : sp.vus_active);
    s->set_iterations_completed(sp.iterations_completed);
    s->set_progress(sp.progress);
    s->set_done(final || sp.done);
  }
  return m;
}

class Session {
 public:
  Session(const std::shared_ptr<grpc::Channel>& channel, const SessionOptions& options)
      : options_(options), stub_(v1::Control::NewStub(channel)) {}

  ~Session() {
    SetLogForwarder(nullptr);
    StopRun("the session ended");
    if (runner_.joinable()) runner_.join();
    if (lifecycle_.joinable()) lifecycle_.join();
    StopTicker();
  }

  absl::Status Run();

 private:
  bool Send(const AgentMessage& m) {
    std::lock_guard<std::mutex> lock(write_mu_);
    const bool ok = stream_ != nullptr && !closed_ && stream_->Write(m);
    last_sent_ns_ = absl::GetCurrentTimeNanos();
    return ok;
  }
  // No more messages from this side (the controller then ends the stream).
  void CloseWrites() {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (closed_) return;
    closed_ = true;
    stream_->WritesDone();
  }
  void SendFailure(v1::Failure::Kind kind, const std::string& message, const std::string& hint = "") {
    AgentMessage m;
    m.mutable_failure()->set_kind(kind);
    m.mutable_failure()->set_message(message);
    m.mutable_failure()->set_hint(hint);
    Send(m);
  }
  // Archive + assignment -> bundle, options, engine with its VUs.
  absl::Status Prepare(const std::string& archive_bytes, const v1::Assignment& a);
  void HandleLifecycle(const v1::RunLifecycle& r);
  void StartRun(const v1::Start& s);
  // Interrupts the VUs of a running test, and a setup() or teardown() under
  // way: nothing runs on without the controller.
  void StopRun(const std::string& why) {
    std::lock_guard<std::mutex> lock(engine_mu_);
    if (engine_ != nullptr && (running_ || lifecycle_active_)) {
      barrage::Log(Severity::kDebug, absl::StrCat("stopping the VUs: ", why));
      engine_->Stop();
    }
  }
  void SendDelta(bool sample_vus);
  // --out json/csv: the raw samples kept so far, in messages under
  // max_message_bytes; `defs` are the engine's metric definitions.
  void SendRawSamples(const std::map<std::string, metrics::MetricDef>& defs);
  // Several times a second until the session ends: heartbeats, the join
  // deadline, the interrupt.
  void Tick();
  void StopTicker() {
    {
      std::lock_guard<std::mutex> lock(ticker_mu_);
      ticker_stop_ = true;
    }
    ticker_cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
  }

  SessionOptions options_;
  std::unique_ptr<v1::Control::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<AgentMessage, ControllerMessage>> stream_;
  std::mutex write_mu_;
  bool closed_ = false;  // WritesDone was called; guarded by write_mu_
  std::atomic<int64_t> last_sent_ns_{0};
  std::mutex engine_mu_;  // engine_ (the pointer), lifecycle_active_ and ready_ for other threads
  std::unique_ptr<Engine> engine_;
  bool lifecycle_active_ = false;
  bool ready_ = false;  // every VU initialised and Ready sent: only now may a Start run the engine
  Options test_options_;
  absl::Duration interval_ = absl::Seconds(1);
  std::atomic<bool> raw_samples_{false};  // Assignment.raw_samples; set by Prepare on the lifecycle thread
  std::mutex raw_mu_;         // one SendRawSamples at a time: a worker's batches stay in order
  std::thread runner_;
  std::thread lifecycle_;
  std::atomic<bool> running_{false};
  std::atomic<bool> welcomed_{false};
  std::atomic<bool> join_timed_out_{false};
  // The interrupt: why (set once, before the VUs are stopped, so the runner
  // sees it when it sends Done), and whether the session closed at once.
  std::mutex leave_mu_;
  std::optional<std::string> leaving_;
  std::atomic<bool> left_at_once_{false};
  std::thread ticker_;
  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;
};

void Session::Tick() {
  bool interrupt_handled = false;
  std::unique_lock<std::mutex> lock(ticker_mu_);
  while (!ticker_cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return ticker_stop_; })) {
    const absl::Time now = absl::Now();
    if (!welcomed_ && options_.join_deadline && now > *options_.join_deadline) {
      join_timed_out_ = true;
      context_.TryCancel();
    }
    if (!interrupt_handled && options_.interrupt != nullptr) {
      if (std::optional<std::string> why = options_.interrupt->requested()) {
        interrupt_handled = true;
        bool was_running;
        {
          // Under leave_mu_, as the runner reads it when it sends Done.
          std::lock_guard<std::mutex> leave(leave_mu_);
          was_running = running_;
          if (was_running) leaving_ = *why;
        }
        if (was_running) {
          // The runner sends the last delta and Done (left_early), then
          // closes this side.
          StopRun(*why);
        } else {
          // Nothing of a test to finish: before it, the controller counts
          // this agent lost; after Done, it has all it needs.
          left_at_once_ = true;
          StopRun(*why);
          context_.TryCancel();
        }
      }
    }
    if (welcomed_ && absl::GetCurrentTimeNanos() - last_sent_ns_ >= 1'000'000'000) {
      AgentMessage heartbeat;
      heartbeat.mutable_heartbeat();
      lock.unlock();
      Send(heartbeat);
      lock.lock();
    }
  }
}

absl::Status Session::Run() {
  stream_ = stub_->Session(&context_);
  AgentMessage hello;
  hello.mutable_hello()->set_protocol_version(options_.protocol_version);
  hello.mutable_hello()->set_name(options_.name);
  hello.mutable_hello()->set_cores(std::thread::hardware_concurrency());
  hello.mutable_hello()->set_capacity(options_.capacity);
  hello.mutable_hello()->set_token(options_.token);
  ticker_ = std::thread([this] { Tick(); });
  if (!Send(hello)) {
    StopTicker();
    grpc::Status st = stream_->Finish();
    if (join_timed_out_) return absl::DeadlineExceededError("no welcome before the join deadline");
    return absl::UnavailableError(absl::StrCat("cannot reach the controller: ", st.error_message()));
  }
  ControllerMessage m;
  std::string archive;
  bool archive_too_big = false;
  while (stream_->Read(&m)) {
    switch (m.msg_case()) {
      case ControllerMessage::kWelcome:
        welcomed_ = true;
        options_.name = m.welcome().name();
        barrage::Log(options_.forward_logs ? Severity::kInfo : Severity::kDebug,
                     absl::StrCat("joined the controller as ", options_.name));
        break;
      case ControllerMessage::kReject: {
        CloseWrites();
        StopTicker();
        (void)stream_->Finish();
        const std::string why = absl::StrCat("the controller refused this agent: ", m.reject().reason());
        if (m.reject().retryable()) return absl::ResourceExhaustedError(why);
        return absl::PermissionDeniedError(why);
      }
      case ControllerMessage::kArchiveChunk:
        if (archive_too_big) break;
        if (archive.size() + m.archive_chunk().data().size() > options_.max_archive_bytes) {
          archive_too_big = true;
          archive.clear();
          SendFailure(v1::Failure::CONFIG, absl::StrCat("the archive is over this agent's limit of ",
                                                        options_.max_archive_bytes, " bytes"));
          break;
        }
        archive += m.archive_chunk().data();
        break;
      case ControllerMessage::kAssignment: {
        if (options_.forward_logs) {
          SetLogForwarder([this](Severity severity, absl::string_view message,
                                 const std::vector<std::pair<std::string, std::string>>& fields) {
            AgentMessage line;
            line.mutable_console()->set_level(static_cast<int>(severity));
            line.mutable_console()->set_message(std::string(message));
            for (const auto& [k, v] : fields) {
              if (k == "source") line.mutable_console()->set_source(v);
            }
            Send(line);
          });
        }
        if (archive_too_big) break;  // refused above
        // On the lifecycle thread, as setup() is: this one keeps reading,
        // so that a Stop (a Ctrl-C on the controller) or the controller's
        // going interrupts a VU's init stuck in a loop.
        if (lifecycle_.joinable()) lifecycle_.join();
        {
          std::lock_guard<std::mutex> lock(engine_mu_);
          lifecycle_active_ = true;
        }
        lifecycle_ = std::thread([this, bytes = std::move(archive), a = m.assignment()] {
          absl::Status st = Prepare(bytes, a);
          {
            std::lock_guard<std::mutex> lock(engine_mu_);
            lifecycle_active_ = false;
          }
          if (!st.ok()) {
            SendFailure(st.code() == absl::StatusCode::kInvalidArgument     ? v1::Failure::SCRIPT
                        : st.code() == absl::StatusCode::kAborted            ? v1::Failure::ABORTED
                        : st.code() == absl::StatusCode::kFailedPrecondition ? v1::Failure::CONFIG
                                                                              : v1::Failure::INTERNAL,
                        std::string(st.message()), InitFailureHint(st));
          }
        });
        archive.clear();
        break;
      }
      case ControllerMessage::kRunLifecycle:
        // On a thread of its own: this one keeps reading, so that a
        // controller that goes away stops a long setup() at once.
        if (lifecycle_.joinable()) lifecycle_.join();
        lifecycle_ = std::thread([this, r = m.run_lifecycle()] { HandleLifecycle(r); });
        break;
      case ControllerMessage::kStart:
        StartRun(m.start());
        break;
      case ControllerMessage::kStop:
        StopRun(m.stop().reason());
        break;
      case ControllerMessage::kEnd: {
        StopRun("the controller ended the test");
        if (runner_.joinable()) runner_.join();
        if (lifecycle_.joinable()) lifecycle_.join();
        SetLogForwarder(nullptr);
        StopTicker();
        CloseWrites();
        grpc::Status st = stream_->Finish();
        engine_.reset();
        (void)st;
        return absl::OkStatus();
      }
      case ControllerMessage::MSG_NOT_SET:
        break;
    }
  }
  // The controller went away (or this side left): no load without it.
  SetLogForwarder(nullptr);
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    closed_ = true;
  }
  StopRun("the controller is gone");
  if (runner_.joinable()) runner_.join();
  if (lifecycle_.joinable()) lifecycle_.join();
  StopTicker();
  grpc::Status st = stream_->Finish();
  engine_.reset();
  std::optional<std::string> leaving;
  {
    std::lock_guard<std::mutex> lock(leave_mu_);
    leaving = leaving_;
  }
  if (leaving) return absl::CancelledError(absl::StrCat("left the test (", *leaving, "); the last metrics were sent"));
  if (left_at_once_) return absl::CancelledError("left the controller");
  if (join_timed_out_) return absl::DeadlineExceededError("no welcome before the join deadline");
  if (!welcomed_) return absl::UnavailableError(absl::StrCat("cannot reach the controller: ", st.error_message()));
  return absl::UnavailableError(absl::StrCat("lost the controller: ", st.error_message()));
}

absl::Status Session::Prepare(const std::string& archive_bytes, const v1::Assignment& a) {
  absl::StatusOr<Archive> archive = ReadArchive(archive_bytes, "the archive", options_.max_archive_bytes);
  if (!archive.ok()) return absl::FailedPreconditionError(archive.status().message());
  std::vector<std::string> warnings;
  absl::StatusOr<Options> options = ParseOptionsJson(a.options_json(), "options", &warnings);
  if (!options.ok()) return absl::FailedPreconditionError(options.status().message());
  options->execution_segment = a.execution_segment();
  options->execution_segment_sequence = a.execution_segment_sequence();
  if (a.execution_segment().empty()) options->execution_segment.reset();
  if (a.execution_segment_sequence().empty()) options->execution_segment_sequence.reset();
  absl::StatusOr<std::vector<Scenario>> scenarios = ResolveScenarios(*options, nullptr);
  if (!scenarios.ok()) return absl::FailedPreconditionError(scenarios.status().message());
  absl::StatusOr<ExecutionTuple> tuple = ExecutionTupleFromOptions(*options);
  if (!tuple.ok()) return absl::FailedPreconditionError(tuple.status().message());
  // This agent's share must fit in its memory (the controller checks the
  // machine it runs on; remote agents check their own).
  if (!a.skip_vus_memory_check()) {
    absl::Status fits = CheckVusFitInMemory(PeakVus(*scenarios, *tuple, /*max_possible=*/true), MemAvailableBytes());
    if (!fits.ok()) return absl::FailedPreconditionError(fits.message());
  }
  auto bundle = std::make_shared<js::Bundle>();
  bundle->main_path = archive->main_path;
  bundle->modules = archive->modules;
  bundle->line_maps = archive->line_maps;
  bundle->files = archive->files;
  absl::Status compiled = js::Runtime::CompileBundle(*bundle);
  if (!compiled.ok()) return absl::InvalidArgumentError(compiled.message());
  test_options_ = *options;
  interval_ = a.metrics_interval_ms() > 0 ? absl::Milliseconds(a.metrics_interval_ms()) : absl::Seconds(1);
  EngineConfig config;
  config.bundle = bundle;
  config.scenarios = *scenarios;
  config.env.insert(a.env().begin(), a.env().end());
  config.test_tags = options->tags.value_or(metrics::TagSet{});
  config.throw_on_bad_metric_value = options->throw_errors.value_or(false);
  config.threads = options_.threads > 0 ? options_.threads : a.threads();
  config.execution = *tuple;
  config.options_json = a.options_json();
  config.options = std::make_shared<const Options>(*options);
  config.emit_vus_gauges = false;  // the controller sums them over the agents
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    engine_ = std::make_unique<Engine>(config);
  }
  raw_samples_ = a.raw_samples();
  if (raw_samples_) {
    engine_->KeepRawSamples(std::max<size_t>(1024, options_.max_raw_pending / std::max(1, engine_->threads())));
  }
  // A failed init keeps the engine: handleSummary() may still run on it,
  // as k6 renders the summary after a VU's init failed.
  absl::Status init = engine_->InitVus();
  if (!init.ok()) {
    absl::Status out(init.code() == absl::StatusCode::kAborted ? init.code() : absl::StatusCode::kInvalidArgument,
                     init.message());
    out.SetPayload(kInitFailureHint, absl::Cord(InitFailureHint(init)));
    return out;
  }
  AgentMessage ready;
  ready.mutable_ready()->set_vus(engine_->planned_vus());
  for (const std::string& e : {"setup", "teardown", "handleSummary"}) {
    if (engine_->HasExport(e)) ready.mutable_ready()->add_exports(e);
  }
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    ready_ = true;
  }
  Send(ready);
  return absl::OkStatus();
}

void Session::HandleLifecycle(const v1::RunLifecycle& r) {
  AgentMessage out;
  v1::LifecycleResult* result = out.mutable_lifecycle_result();
  result->set_function(r.function());
  if (engine_ == nullptr) {
    result->set_ok(false);
    result->set_error("the agent has no test to run it in");
    Send(out);
    return;
  }
  const absl::Duration timeout = absl::Milliseconds(r.timeout_ms());
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    lifecycle_active_ = true;
  }
  if (r.function() == "setup") {
    absl::StatusOr<std::optional<std::string>> data = engine_->RunSetup(timeout);
    result->set_ok(data.ok());
    if (data.ok() && data->has_value()) {
      result->set_has_data(true);
      result->set_data_json(**data);
    }
    if (!data.ok()) {
      result->set_error(std::string(data.status().message()));
      result->set_timed_out(data.status().code() == absl::StatusCode::kDeadlineExceeded);
    }
  } else if (r.function() == "handleSummary") {
    absl::StatusOr<std::optional<std::string>> out =
        engine_->RunHandleSummary(r.data_json(), r.summary_text(), r.summary_text_color(), timeout);
    result->set_ok(out.ok());
    if (out.ok() && out->has_value()) {
      result->set_has_data(true);
      result->set_data_json(**out);
    }
    if (!out.ok()) {
      result->set_error(std::string(out.status().message()));
      result->set_timed_out(out.status().code() == absl::StatusCode::kDeadlineExceeded);
    }
  } else {
    std::optional<std::string> data;
    if (r.has_data()) data = r.data_json();
    absl::Status st = engine_->RunTeardown(data, timeout);
    result->set_ok(st.ok());
    if (!st.ok()) {
      result->set_error(std::string(st.message()));
      result->set_timed_out(st.code() == absl::StatusCode::kDeadlineExceeded);
    }
  }
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    lifecycle_active_ = false;
  }
  if (auto reason = engine_->abort_reason()) result->set_abort_reason(*reason);
  // Samples of setup/teardown (checks, requests) count too.
  SendDelta(/*sample_vus=*/false);
  Send(out);
}

void Session::SendDelta(bool sample_vus) {
  metrics::MetricStore delta;
  absl::Status st = engine_->Collect(delta, sample_vus);
  if (!st.ok()) {
    barrage::Log(Severity::kError, st.message());
    return;
  }
  // Series whose tags are over the controller's limit are counted, not
  // sent: it would drop them.
  for (v1::MetricsDelta& part :
       metrics::StoreToProtos(delta, options_.max_message_bytes, metrics::WireLimits().max_tag_bytes)) {
    AgentMessage m;
    *m.mutable_metrics() = std::move(part);
    Send(m);
  }
  if (options_.local_metrics != nullptr) {
    std::lock_guard<std::mutex> lock(*options_.local_metrics_mu);
    (void)options_.local_metrics->Merge(delta);
  }
  // After the delta, which defines every metric they name.
  if (raw_samples_) SendRawSamples(delta.defs());
}

void Session::SendRawSamples(const std::map<std::string, metrics::MetricDef>& defs) {
  std::lock_guard<std::mutex> lock(raw_mu_);  // the runner and the lifecycle thread both send
  // A message's size is estimated as it grows (a sample is at most 40
  // bytes on the wire; a name or tag set its bytes plus 8), and cut at half
  // the limit, far from gRPC's refusal.
  const size_t budget = options_.max_message_bytes / 2;
  std::optional<std::map<std::string, metrics::MetricDef>> fresh;
  for (RawSampleBatch& batch : engine_->TakeRawSamples()) {
    AgentMessage m;
    v1::RawSamples* out = m.mutable_raw_samples();
    out->set_dropped(batch.dropped);
    std::vector<int64_t> metric_at(batch.metrics.size(), -1), tags_at(batch.tag_sets.size(), -1);
    size_t bytes = 0;
    auto flush = [&] {
      if (out->samples_size() == 0 && out->dropped() == 0) return;
      Send(m);
      m.Clear();
      out = m.mutable_raw_samples();
      std::fill(metric_at.begin(), metric_at.end(), -1);
      std::fill(tags_at.begin(), tags_at.end(), -1);
      bytes = 0;
    };
    const size_t max_tag_bytes = metrics::WireLimits().max_tag_bytes;
    for (const RawSampleBatch::Sample& s : batch.samples) {
      if (batch.tag_sets[s.tag_set].size() > max_tag_bytes) {
        // The controller refuses such tag sets (as the deltas leave them
        // out): counted, not sent.
        out->set_dropped(out->dropped() + 1);
        continue;
      }
      if (bytes > budget) flush();
      if (metric_at[s.metric] < 0) {
        metric_at[s.metric] = out->metrics_size();
        v1::MetricDefinition* d = out->add_metrics();
        const std::string& name = batch.metrics[s.metric];
        d->set_name(name);
        const metrics::MetricDef* def = nullptr;
        if (auto it = defs.find(name); it != defs.end()) def = &it->second;
        if (def == nullptr) {
          // Defined after `defs` was taken: the engine has it now (a sample
          // is only kept for a defined metric).
          if (!fresh) fresh = engine_->Definitions();
          if (auto it = fresh->find(name); it != fresh->end()) def = &it->second;
        }
        if (def != nullptr) {
          d->set_type(static_cast<v1::MetricType>(static_cast<int>(def->type) + 1));
          d->set_contains(static_cast<v1::ValueType>(static_cast<int>(def->contains) + 1));
        }
        bytes += name.size() + 8;
      }
      if (tags_at[s.tag_set] < 0) {
        tags_at[s.tag_set] = out->tag_sets_size();
        out->add_tag_sets(batch.tag_sets[s.tag_set]);
        bytes += batch.tag_sets[s.tag_set].size() + 8;
      }
      v1::RawSample* r = out->add_samples();
      r->set_metric(static_cast<uint32_t>(metric_at[s.metric]));
      r->set_tag_set(static_cast<uint32_t>(tags_at[s.tag_set]));
      r->set_value(s.value);
      r->set_time_unix_ns(s.time_ns);
      if (s.vu >= 0) r->set_vu(static_cast<uint64_t>(s.vu));
      if (s.iter >= 0) r->set_iter(s.iter);
      bytes += 40;
    }
    flush();
  }
}

void Session::StartRun(const v1::Start& s) {
  {
    // Prepare sets engine_ on the lifecycle thread: read it under the lock
    // that guards it. (The controller's Start follows our Ready, but that
    // order runs through another process, and a controller out of turn
    // must not make this a race: ThreadSanitizer, StreamTest.*.)
    // Nor may a Start before our Ready run the engine while its VUs are
    // still being initialised on the lifecycle thread.
    std::lock_guard<std::mutex> lock(engine_mu_);
    if (engine_ == nullptr || !ready_) {
      barrage::Log(Severity::kWarning, "the controller sent Start before this agent was ready: ignored");
      return;
    }
  }
  if (running_ || runner_.joinable()) return;
  running_ = true;
  std::optional<std::string> setup_data;
  if (s.has_setup_data()) setup_data = s.setup_data_json();
  const absl::Time start = absl::FromUnixNanos(s.start_unix_ns());
  runner_ = std::thread([this, setup_data, start] {
    // Every agent starts at the same wall-clock time.
    const absl::Duration wait = start - absl::Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(std::min(wait, absl::Seconds(60)));
    barrage::Log(Severity::kDebug, absl::StrFormat("scenarios started %.3f ms after the scheduled start",
                                                   absl::ToDoubleMilliseconds(absl::Now() - start)));
    std::atomic<bool> finished{false};
    std::thread run([&] {
      engine_->Run(setup_data);
      finished = true;
    });
    absl::Time next = absl::Now() + interval_;
    // One early progress report once the VUs have started: the controller
    // samples the vus gauge a second after the start, and without it saw
    // none active when its sample came first.
    absl::Time early = absl::Now() + absl::Milliseconds(100);
    while (!finished) {
      absl::SleepFor(absl::Milliseconds(20));
      if (absl::Now() >= early) {
        early = absl::InfiniteFuture();
        Send(ProgressMessage(engine_->Progress(), /*final=*/false));
      }
      if (raw_samples_ && engine_->raw_pending() >= options_.raw_flush_samples) {
        SendRawSamples(engine_->Definitions());
      }
      if (absl::Now() < next) continue;
      next += interval_;
      SendDelta(/*sample_vus=*/true);
      Send(ProgressMessage(engine_->Progress(), /*final=*/false));
    }
    run.join();
    SendDelta(/*sample_vus=*/false);
    Send(ProgressMessage(engine_->Progress(), /*final=*/true));
    AgentMessage done;
    if (auto reason = engine_->abort_reason()) done.mutable_done()->set_abort_reason(*reason);
    done.mutable_done()->set_test_failed(engine_->test_failed());
    std::optional<std::string> leaving;
    {
      std::lock_guard<std::mutex> lock(leave_mu_);
      leaving = leaving_;
      running_ = false;  // from here, an interrupt closes the session at once
    }
    if (leaving) done.mutable_done()->set_left_early(*leaving);
    Send(done);
    // Everything measured is sent: the controller ends the stream.
    if (leaving) CloseWrites();
  });
}

}  // namespace

absl::Status RunSession(const std::shared_ptr<grpc::Channel>& channel, const SessionOptions& options) {
  Session session(channel, options);
  return session.Run();
}

}  // namespace barrage::agent
