#include "agent/session.h"

#include <grpcpp/client_context.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/engine.h"
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
  }

  absl::Status Run();

 private:
  bool Send(const AgentMessage& m) {
    std::lock_guard<std::mutex> lock(write_mu_);
    return stream_ != nullptr && !closed_ && stream_->Write(m);
  }
  void SendFailure(v1::Failure::Kind kind, const std::string& message) {
    AgentMessage m;
    m.mutable_failure()->set_kind(kind);
    m.mutable_failure()->set_message(message);
    Send(m);
  }
  // Archive + assignment -> bundle, options, engine with its VUs.
  absl::Status Prepare(const std::string& archive_bytes, const v1::Assignment& a);
  void HandleLifecycle(const v1::RunLifecycle& r);
  void StartRun(const v1::Start& s);
  void StopRun(const std::string& why) {
    if (engine_ != nullptr && running_) {
      barrage::Log(Severity::kDebug, absl::StrCat("stopping the VUs: ", why));
      engine_->Stop();
    }
  }
  void SendDelta(bool sample_vus);

  SessionOptions options_;
  std::unique_ptr<v1::Control::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<AgentMessage, ControllerMessage>> stream_;
  std::mutex write_mu_;
  bool closed_ = false;  // WritesDone was called; guarded by write_mu_
  std::unique_ptr<Engine> engine_;
  Options test_options_;
  absl::Duration interval_ = absl::Seconds(1);
  std::thread runner_;
  std::atomic<bool> running_{false};
};

absl::Status Session::Run() {
  stream_ = stub_->Session(&context_);
  AgentMessage hello;
  hello.mutable_hello()->set_protocol_version(options_.protocol_version);
  hello.mutable_hello()->set_name(options_.name);
  hello.mutable_hello()->set_cores(std::thread::hardware_concurrency());
  hello.mutable_hello()->set_capacity(options_.capacity);
  hello.mutable_hello()->set_token(options_.token);
  if (!Send(hello)) {
    grpc::Status st = stream_->Finish();
    return absl::UnavailableError(absl::StrCat("cannot reach the controller: ", st.error_message()));
  }
  ControllerMessage m;
  std::string archive;
  bool archive_too_big = false;
  bool welcomed = false;
  while (stream_->Read(&m)) {
    switch (m.msg_case()) {
      case ControllerMessage::kWelcome:
        welcomed = true;
        options_.name = m.welcome().name();
        barrage::Log(options_.forward_logs ? Severity::kInfo : Severity::kDebug,
                     absl::StrCat("joined the controller as ", options_.name));
        break;
      case ControllerMessage::kReject: {
        {
          std::lock_guard<std::mutex> lock(write_mu_);
          closed_ = true;
          stream_->WritesDone();
        }
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
        absl::Status st = Prepare(archive, m.assignment());
        archive.clear();
        if (!st.ok()) {
          SendFailure(st.code() == absl::StatusCode::kInvalidArgument ? v1::Failure::SCRIPT
                      : st.code() == absl::StatusCode::kFailedPrecondition ? v1::Failure::CONFIG
                                                                            : v1::Failure::INTERNAL,
                      std::string(st.message()));
        }
        break;
      }
      case ControllerMessage::kRunLifecycle:
        HandleLifecycle(m.run_lifecycle());
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
        SetLogForwarder(nullptr);
        {
          std::lock_guard<std::mutex> lock(write_mu_);
          closed_ = true;
          stream_->WritesDone();
        }
        grpc::Status st = stream_->Finish();
        engine_.reset();
        (void)st;
        return absl::OkStatus();
      }
      case ControllerMessage::MSG_NOT_SET:
        break;
    }
  }
  // The controller went away: no load without it.
  SetLogForwarder(nullptr);
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    closed_ = true;
  }
  StopRun("the controller is gone");
  if (runner_.joinable()) runner_.join();
  grpc::Status st = stream_->Finish();
  engine_.reset();
  if (!welcomed) return absl::UnavailableError(absl::StrCat("cannot reach the controller: ", st.error_message()));
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
  config.emit_vus_gauges = false;  // the controller sums them over the agents
  engine_ = std::make_unique<Engine>(config);
  absl::Status init = engine_->InitVus();
  if (!init.ok()) return absl::InvalidArgumentError(init.message());
  AgentMessage ready;
  ready.mutable_ready()->set_vus(engine_->planned_vus());
  for (const std::string& e : {"setup", "teardown", "handleSummary"}) {
    if (engine_->HasExport(e)) ready.mutable_ready()->add_exports(e);
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
  AgentMessage m;
  metrics::StoreToProto(delta, m.mutable_metrics());
  Send(m);
  if (options_.local_metrics != nullptr) {
    std::lock_guard<std::mutex> lock(*options_.local_metrics_mu);
    (void)options_.local_metrics->Merge(delta);
  }
}

void Session::StartRun(const v1::Start& s) {
  if (engine_ == nullptr || running_ || runner_.joinable()) return;
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
    while (!finished) {
      absl::SleepFor(absl::Milliseconds(20));
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
    running_ = false;
    Send(done);
  });
}

}  // namespace

absl::Status RunSession(const std::shared_ptr<grpc::Channel>& channel, const SessionOptions& options) {
  Session session(channel, options);
  return session.Run();
}

}  // namespace barrage::agent
