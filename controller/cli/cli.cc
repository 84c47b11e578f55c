#include "controller/cli/cli.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/session.h"
#include "agent/worker_pool.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/metrics/prometheus_exporter.h"
#include "common/options.h"
#include "common/vu_memory.h"
#include "common/scenario_share.h"
#include "controller/cli/exit_codes.h"
#include "controller/cli/local_agents.h"
#include "controller/cli/prepare.h"
#include "controller/cli/progress_display.h"
#include "controller/cli/report.h"
#include "controller/cli/run_loop.h"
#include "controller/cli/run_settings.h"
#include "controller/cli/signals.h"
#include "controller/cli/web_dashboard.h"
#include "controller/cli/version.h"
#include "controller/coordinator.h"
#include "nlohmann/json.hpp"

namespace barrage::cli {
namespace {

int ArchiveCommand(const RunFlags& flags) {
  Prepared p;
  if (int code = Prepare(flags, p); code != 0) return code;
  std::ofstream out(flags.archive_out, std::ios::binary | std::ios::trunc);
  out << p.archive;
  out.close();
  if (!out) {
    barrage::Log(Severity::kError, absl::StrCat("-O/--archive-out: cannot write ", flags.archive_out));
    return kExitInvalidConfig;
  }
  return kExitOk;
}

int InspectCommand(const RunFlags& flags) {
  Prepared p;
  if (int code = Prepare(flags, p); code != 0) return code;
  nlohmann::json j = nlohmann::json::parse(OptionsToJson(p.options, p.scenarios));
  if (flags.execution_requirements) {
    j["maxVUs"] = PeakVus(p.scenarios, p.tuple, /*max_possible=*/true);
    j["totalDuration"] = FormatGoDuration(TotalDuration(p.scenarios));
  }
  std::cout << j.dump(2) << "\n";
  return kExitOk;
}

// The directory of this executable: barrage-agent is installed beside it.
std::string SelfDir() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

// What the coordinator needs: the archive every agent runs from, the
// consolidated options, the env and the split.
controller::OutputSettings OutputSettingsFor(const Options& options) {
  controller::OutputSettings s;
  s.thresholds = options.thresholds.value_or(std::map<std::string, std::vector<ThresholdSpec>>{});
  s.system_tags = options.SystemTags();
  for (const char* k : {"K6_CSV_FILENAME", "K6_CSV_TIME_FORMAT", "K6_CSV_SAVE_INTERVAL"}) {
    if (const char* v = std::getenv(k)) s.env[k] = v;
  }
  return s;
}

absl::StatusOr<controller::CoordinatorConfig> MakeCoordinatorConfig(const RunFlags& flags, const AgentPlan& plan,
                                                                    const ControlPlaneSettings& control,
                                                                    const Prepared& prepared) {
  const Options& options = prepared.options;
  controller::CoordinatorConfig cc;
  cc.archive = prepared.archive;
  cc.options_json = OptionsToJson(options, prepared.scenarios);
  cc.env = prepared.env;
  cc.expected_agents = plan.count;
  cc.token = control.token;
  cc.threads = flags.threads;
  cc.controller_version = kVersion;
  cc.log_joins = !plan.embedded;
  cc.stop_signals = StopSignalsReceived;
  // Bounds on what agents may report: no agent has more VUs than all the
  // scenarios together, nor a scenario the test lacks.
  for (const Scenario& s : prepared.scenarios) {
    cc.max_vus += PeakVus({s}, prepared.tuple, /*max_possible=*/true);
    cc.scenarios.insert(s.name);
  }
  cc.vus_memory_check = flags.vus_memory_check;
  if (options.execution_segment || options.execution_segment_sequence) {
    if (plan.count > 1) {
      // Splitting a segment again would not add up with the other parts of
      // the user's split: their striping is over the user's sequence.
      return absl::InvalidArgumentError(
          "executionSegment: a run that is itself one segment of a split runs on one agent; "
          "drop --agents/--expect-agents or the segment options");
    }
    cc.fixed_segment = options.execution_segment.value_or("");
    cc.fixed_sequence = options.execution_segment_sequence.value_or("");
  }
  return cc;
}

// --prometheus: the merged metrics and the run's state at /metrics; null
// without the flag.
absl::StatusOr<std::unique_ptr<metrics::PrometheusExporter>> StartExporter(const RunFlags& flags,
                                                                           controller::Coordinator& coordinator,
                                                                           RunState& state) {
  if (!flags.prometheus) {
    if (!flags.prometheus_labels.empty() || flags.linger) {
      return absl::InvalidArgumentError("--prometheus-label and --linger: only with --prometheus ADDR");
    }
    return nullptr;
  }
  metrics::ExporterConfig ec;
  ec.address = *flags.prometheus;
  ec.extra_labels = flags.prometheus_labels;
  ec.max_series = flags.prometheus_max_series;
  absl::StatusOr<std::unique_ptr<metrics::PrometheusExporter>> started = metrics::PrometheusExporter::Start(
      ec, [&coordinator](const std::function<void(metrics::MetricStore&)>& fn) { coordinator.WithMetrics(fn); },
      [&coordinator, &state] {
        metrics::RunState st;
        st.agents_connected = coordinator.Progress().agents;
        st.phase = kRunPhases[state.phase.load()];
        st.thresholds_passing = state.thresholds_passing.load();
        return st;
      });
  if (!started.ok()) return started.status();
  barrage::Log(Severity::kInfo, absl::StrCat("Prometheus metrics on http://", (*started)->address(), "/metrics"));
  return started;
}

// --linger: the last scrapes see the final numbers; Ctrl-C ends the wait.
absl::StatusOr<absl::Duration> ParseLinger(const RunFlags& flags) {
  if (!flags.linger) return absl::ZeroDuration();
  absl::StatusOr<absl::Duration> d = ParseDuration(*flags.linger);
  if (!d.ok() || *d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--linger: expected a duration like 30s, got '", *flags.linger, "'"));
  }
  return *d;
}

void Linger(absl::Duration linger) {
  barrage::Log(Severity::kInfo, absl::StrCat("serving the final metrics for ", FormatGoDuration(linger)));
  const absl::Time until = absl::Now() + linger;
  const int signals = StopSignalsReceived();
  while (absl::Now() < until && StopSignalsReceived() == signals) absl::SleepFor(absl::Milliseconds(100));
}

// The control plane's server and the agents that talk to it.
struct ControlPlane {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::vector<std::thread> local_agents;
  std::unique_ptr<LocalAgents> children;  // --agents N

  void Shutdown(controller::Coordinator& coordinator) {
    coordinator.End();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    for (auto& t : local_agents) t.join();
    if (children) children->Wait(absl::Seconds(10));
  }
};

// The gRPC server agents dial (in-process only in embedded mode), with
// TLS when asked. 0 or an exit code.
int StartServer(const RunFlags& flags, const AgentPlan& plan, controller::Coordinator& coordinator, ControlPlane& cp) {
  grpc::ServerBuilder builder;
  if (!plan.embedded) {
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (flags.tls_cert) {
      absl::StatusOr<std::string> cert = ReadFile(*flags.tls_cert);
      absl::StatusOr<std::string> key = ReadFile(flags.tls_key.value_or(""));
      if (!cert.ok()) return ConfigError(absl::StrCat("--tls-cert: cannot read ", *flags.tls_cert));
      if (!key.ok()) return ConfigError("--tls-key: a readable key file is required with --tls-cert");
      grpc::SslServerCredentialsOptions ssl(flags.tls_ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                         : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      ssl.pem_key_cert_pairs.push_back({*key, *cert});
      if (flags.tls_ca) {
        absl::StatusOr<std::string> ca = ReadFile(*flags.tls_ca);
        if (!ca.ok()) return ConfigError(absl::StrCat("--tls-ca: cannot read ", *flags.tls_ca));
        ssl.pem_root_certs = *ca;
      }
      creds = grpc::SslServerCredentials(ssl);
    }
    builder.AddListeningPort(plan.listen, creds, &cp.port);
  }
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // Connections that never finish their handshake, or hold no session,
  // are closed: the coordinator bounds streams, this bounds the rest.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 30000);
  // An agent holds one session per connection; a peer opening thousands of
  // streams on one connection made the server hold them all (320 MB for
  // 15,000), where HTTP/2 lets it hold the rest back at the client.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 256);
  // gRPC sets SO_REUSEPORT by default: a second controller on the same port
  // would share it silently (agents joining either), and port 0 may pick a
  // port another such server holds (connections then reset at random).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&coordinator);
  cp.server = builder.BuildAndStart();
  if (cp.server == nullptr || (!plan.embedded && cp.port == 0)) {
    barrage::Log(Severity::kError, absl::StrCat("cannot listen on ", plan.listen, " for agents (address in use or invalid)"));
    return kExitInvalidConfig;
  }
  return 0;
}

// The embedded agent (a thread speaking the same protocol over an
// in-process channel), or --agents N local processes, or nothing to start
// (--listen: remote agents dial in). 0 or an exit code.
int StartAgents(const RunFlags& flags, const AgentPlan& plan, const ControlPlaneSettings& control, ControlPlane& cp) {
  std::unique_ptr<grpc::Server>& server = cp.server;
  const int port = cp.port;
  std::vector<std::thread>& local_agents = cp.local_agents;
  if (plan.embedded) {
    // The embedded agent speaks the same protocol over an in-process channel.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    std::shared_ptr<grpc::Channel> channel = server->InProcessChannel(args);
    local_agents.emplace_back([channel, threads = flags.threads] {
      agent::SessionOptions so;
      so.name = "local";
      so.forward_logs = false;  // same process: its lines are printed already
      so.threads = threads;
      absl::Status st = agent::RunSession(channel, so);
      if (!st.ok()) barrage::Log(Severity::kError, st.message());
    });
  } else {
    const std::string address = plan.listen.substr(0, plan.listen.rfind(':') + 1) + std::to_string(port);
    barrage::Log(Severity::kInfo, absl::StrCat("control plane listening on ", address, ", waiting for ", plan.count,
                                               plan.count == 1 ? " agent" : " agents"));
    if (flags.agents > 0) {
      absl::StatusOr<std::unique_ptr<LocalAgents>> started = LocalAgents::Start(
          {SelfDir() + "/barrage-agent", address, control.token, control.agent_timeout + absl::Seconds(10), flags.verbose},
          plan.count);
      if (!started.ok()) {
        barrage::Log(Severity::kError, started.status().message());
        return kExitInternal;
      }
      cp.children = *std::move(started);
    }
  }
  return 0;
}

// Waits for the plan's agents, in slices so that Ctrl-C while waiting ends
// the run at once. 0 or an exit code.
int WaitForAgents(controller::Coordinator& coordinator, const AgentPlan& plan, absl::Duration agent_timeout,
                  LocalAgents* local) {
  const absl::Time give_up = absl::Now() + agent_timeout;
  for (;;) {
    const absl::Duration left = give_up - absl::Now();
    if (coordinator.WaitForAgents(std::max(absl::ZeroDuration(), std::min(left, absl::Milliseconds(200))))) return 0;
    if (left <= absl::ZeroDuration()) break;
    if (StopSignalsReceived() > 0) {
      barrage::Log(Severity::kWarning, "stopped while waiting for agents");
      return kExitExternalAbort;
    }
    // A local agent that died before joining never will: say why now.
    if (std::optional<std::string> dead = local != nullptr ? local->FirstExited() : std::nullopt) {
      barrage::Log(Severity::kError, absl::StrCat("local agent ", *dead));
      return kExitAgentLost;
    }
  }
  barrage::Log(Severity::kError, absl::StrCat("only ", coordinator.LiveAgents(), " of ", plan.count,
                                              " agents joined within ", FormatGoDuration(agent_timeout)));
  return kExitAgentLost;
}

// User and system CPU time of this process so far, in seconds.
double ProcessCpuSeconds() {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Sends every agent its share; they compile the script and make their
// VUs. 0 or an exit code; a VU's failed init is logged as k6 logs it (the
// JS stack, hint "error while initializing VU #2 (script exception)").
int AssignAgents(controller::Coordinator& coordinator) {
  v1::Failure failure;
  const absl::Time init_start = absl::Now();
  const double cpu_start = ProcessCpuSeconds();
  absl::Status st = coordinator.Assign(absl::Minutes(10), &failure);
  if (absl::IsCancelled(st)) {
    barrage::Log(Severity::kWarning, st.message());
    coordinator.Stop("stopped by the user");  // agents interrupt the VUs' init
    return kExitExternalAbort;
  }
  if (!st.ok()) {
    const bool script = failure.kind() == v1::Failure::SCRIPT || failure.kind() == v1::Failure::ABORTED;
    if (script && !failure.hint().empty()) {
      barrage::Log(Severity::kError, failure.message(), {{"hint", failure.hint()}});
    } else {
      barrage::Log(Severity::kError, st.message());
    }
    if (failure.kind() == v1::Failure::ABORTED) return kExitScriptAborted;
    if (failure.kind() == v1::Failure::SCRIPT) return kExitScriptException;
    if (st.code() == absl::StatusCode::kUnavailable || st.code() == absl::StatusCode::kDeadlineExceeded) {
      return kExitAgentLost;
    }
    return kExitInvalidConfig;
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - init_start);
  const double cpu = ProcessCpuSeconds() - cpu_start;
  const int64_t vus = coordinator.PlannedVus();
  // The CPU figure counts this process only: with an embedded agent, the
  // VUs' init; on a loaded machine it is steadier than the wall clock.
  barrage::Log(Severity::kDebug,
               absl::StrFormat("initialized %d VUs in %.3f s (%.0f VUs/s; %.3f s of CPU here, %.0f VUs per CPU-second)",
                               vus, secs, secs > 0 ? static_cast<double>(vus) / secs : 0.0, cpu,
                               cpu > 0 ? static_cast<double>(vus) / cpu : 0.0));
  return 0;
}

int RunCommand(const RunFlags& command_line) {
  // From the start: a Ctrl-C at any point is counted, and the first one
  // stops the run at the next step rather than killing the process.
  InstallStopSignalHandlers();

  // 1. The settings from their sources, the agent plan, the script and its options.
  RunFlags flags = command_line;
  if (absl::Status st = ApplyConfigRunSettings(flags); !st.ok()) return ConfigError(std::string(st.message()));
  absl::StatusOr<AgentPlan> plan = MakeAgentPlan(flags);
  if (!plan.ok()) return ConfigError(std::string(plan.status().message()));
  // Embedded: this process runs the VUs and serves no sockets.
  if (plan->embedded) agent::ConfigureProcessForVus();
  // Agents get the -e values; this process's environment (secrets and
  // all) only when asked, as k6 archives leave it out. The embedded run is
  // this machine's own: k6's __ENV there, the environment and -e.
  if (!plan->embedded && !flags.include_system_env_set) flags.include_system_env = false;
  absl::StatusOr<ControlPlaneSettings> control = ReadControlPlaneSettings(flags, *plan);
  if (!control.ok()) return ConfigError(std::string(control.status().message()));
  Prepared prepared;
  if (int code = Prepare(flags, prepared); code != 0) return code;
  // VUs made on this machine (the embedded agent, --agents) must fit in it.
  if (flags.vus_memory_check && (plan->embedded || flags.agents > 0)) {
    const int64_t vus = PeakVus(prepared.scenarios, prepared.tuple, /*max_possible=*/true);
    if (absl::Status st = CheckVusFitInMemory(vus, MemAvailableBytes()); !st.ok()) {
      return ConfigError(std::string(st.message()));
    }
  }
  absl::StatusOr<absl::Duration> linger = ParseLinger(flags);
  if (!linger.ok()) return ConfigError(std::string(linger.status().message()));

  // 2. The control plane, its observers and the agents.
  absl::StatusOr<controller::CoordinatorConfig> cc = MakeCoordinatorConfig(flags, *plan, *control, prepared);
  if (!cc.ok()) return ConfigError(std::string(cc.status().message()));
  // --out: agents forward their samples only when an output wants them.
  absl::StatusOr<std::unique_ptr<controller::SampleOutputs>> outputs =
      controller::SampleOutputs::Open(flags.outs, OutputSettingsFor(prepared.options));
  if (!outputs.ok()) return ConfigError(std::string(outputs.status().message()));
  if (!(*outputs)->empty()) {
    cc->raw_samples = [out = outputs->get()](const v1::RawSamples& batch) { return out->Accept(batch); };
  }
  // A lost local agent is described by its process (exit status, last
  // stderr lines); set once the agents are started, read on this thread.
  LocalAgents* local_agents = nullptr;
  cc->describe_lost = [&local_agents](const std::string& name) {
    return local_agents != nullptr ? local_agents->Describe(name) : std::string();
  };
  controller::Coordinator coordinator(*std::move(cc));
  RunState state;
  absl::StatusOr<std::unique_ptr<metrics::PrometheusExporter>> exporter = StartExporter(flags, coordinator, state);
  if (!exporter.ok()) return ConfigError(std::string(exporter.status().message()));
  absl::StatusOr<std::unique_ptr<dashboard::Dashboard>> web = StartWebDashboard(flags, coordinator, prepared, state);
  if (!web.ok()) return ConfigError(std::string(web.status().message()));
  ControlPlane cp;
  if (int code = StartServer(flags, *plan, coordinator, cp); code != 0) return code;
  if (int code = StartAgents(flags, *plan, *control, cp); code != 0) {
    cp.Shutdown(coordinator);
    return code;
  }
  local_agents = cp.children.get();
  if (int code = WaitForAgents(coordinator, *plan, control->agent_timeout, local_agents); code != 0) {
    cp.Shutdown(coordinator);
    return code;
  }
  if (!flags.quiet) PrintBanner(flags.script, prepared.scenarios, prepared.tuple, plan->embedded ? 0 : plan->count);
  if (int code = AssignAgents(coordinator); code != 0) {
    // k6 renders the summary, handleSummary() included, even when a VU's
    // init failed (an exception: 107; exec.test.abort(): 108).
    if (code == kExitScriptException || code == kExitScriptAborted) {
      RunOutcome outcome;
      outcome.exit_code = code;
      code = Report({coordinator, prepared, flags, *plan, state}, outcome);
    }
    cp.Shutdown(coordinator);
    return code;
  }

  // 3. setup, the scenarios, teardown; metrics merged as they come.
  const RunOutcome outcome = RunTest({coordinator, prepared, flags, *plan, state, **outputs});

  // 4. Thresholds, summary, export, exit code.
  const int exit_code = Report({coordinator, prepared, flags, *plan, state}, outcome);
  if (*web != nullptr) (*web)->Finish(outcome.test_duration, outcome.setup_data);
  cp.Shutdown(coordinator);
  if (*exporter != nullptr && *linger > absl::ZeroDuration()) Linger(*linger);
  return exit_code;
}

}  // namespace

// Logging as k6 sets it up before anything else: the runtime settings from
// flags and K6_* variables, then --log-output, --log-format, --no-color,
// -v and --console-output. 0 or an exit code.
int ConfigureLogging(RunFlags& f) {
  ConfigureLog({f.verbose, isatty(STDERR_FILENO) != 0, false});  // for the errors below
  if (absl::Status st = ApplyRuntimeEnv(f, ::getenv); !st.ok()) return ConfigError(std::string(st.message()));
  absl::StatusOr<LogOutput> output = ParseLogOutput(f.log_output.value_or("stderr"));
  if (!output.ok()) return ConfigError(absl::StrCat("--log-output (K6_LOG_OUTPUT): ", output.status().message()));
  std::string console = f.console_output.value_or("");
  if (const char* env = getenv("K6_CONSOLE_OUTPUT"); console.empty() && env != nullptr) console = env;
  if (absl::Status st = SetLogOutput(*output, console); !st.ok()) return ConfigError(std::string(st.message()));
  const bool tty = output->kind == LogOutput::Kind::kStderr   ? isatty(STDERR_FILENO) != 0
                   : output->kind == LogOutput::Kind::kStdout ? isatty(STDOUT_FILENO) != 0
                                                              : false;
  const std::string format = f.log_format.value_or("");
  ConfigureLog({f.verbose, tty, tty && !f.no_color,
                format == "json" ? LogFormat::kJson : format == "raw" ? LogFormat::kRaw : LogFormat::kText});
  return 0;
}

// Repeatable options take one value per occurrence, as k6's do: without
// this CLI11 lets `-e X=1 script.js` swallow the script as a second value.
CLI::Option* Repeatable(CLI::Option* option) { return option->allow_extra_args(false); }

// The flags k6 gives `run`, `inspect` and `archive` alike: the options, the
// runtime options and the logging flags.
void AddTestFlags(CLI::App* cmd, RunFlags& f) {
  cmd->add_option("script", f.script, "the test script (.js, a .tar from `barrage archive`, or - for stdin)")
      ->required();
  cmd->add_option("-u,--vus", f.vus, "number of virtual users");
  cmd->add_option("-d,--duration", f.duration, "test duration, e.g. 30s");
  cmd->add_option("-i,--iterations", f.iterations, "total iterations, shared among the VUs");
  Repeatable(cmd->add_option("-s,--stage", f.stages, "a ramping-vus stage DURATION:TARGET, e.g. 30s:10 (repeatable)"));
  Repeatable(cmd->add_option("-e,--env", f.env, "an __ENV entry, KEY=VALUE (repeatable)"));
  Repeatable(cmd->add_option("--tag", f.tags, "a tag on every sample, NAME=VALUE (repeatable)"));
  cmd->add_option("-c,--config", f.config,
                  "a JSON file of options, or a YAML file of options plus run settings under `barrage:`");
  cmd->add_option("--execution-segment", f.execution_segment, "the part of the test to run, e.g. 1/3:2/3");
  cmd->add_option("--execution-segment-sequence", f.execution_segment_sequence,
                  "how the whole test is split, e.g. 0,1/3,2/3,1");
  cmd->add_flag("--no-setup", f.no_setup, "do not run setup()");
  cmd->add_flag("--no-teardown", f.no_teardown, "do not run teardown()");
  cmd->add_flag("--no-thresholds", f.no_thresholds, "do not evaluate thresholds");
  cmd->add_flag("-w,--throw", f.throw_errors, "throw on bad metric values");
  cmd->add_option("--system-tags", f.system_tags,
                  "the system tags samples carry, e.g. status,method (default: k6's: check, error, error_code, "
                  "expected_response, group, method, name, proto, scenario, service, status, subproto, tls_version, url)");
  cmd->add_option("--user-agent", f.user_agent, "the user-agent prefix of target connections (default Barrage/<version>)");
  cmd->add_option("--min-iteration-duration", f.min_iteration_duration,
                  "pad every shorter iteration with a sleep to this duration");
  cmd->add_flag("--insecure-skip-tls-verify", f.insecure_skip_tls_verify,
                "do not verify the target's TLS certificate");
  cmd->add_option("--console-output", f.console_output, "write console.log() & co. to FILE instead of the log");
  cmd->add_option("--dns", f.dns,
                  "DNS resolver configuration of gRPC connections, e.g. ttl=1m,select=roundRobin,policy=any "
                  "(default ttl=5m,select=random,policy=preferIPv4; ttl 'inf' caches for ever, '0' not at all, "
                  "a number is ms)");
  cmd->add_option("--summary-export", f.summary_export, "write the end-of-test summary as JSON to FILE");
  cmd->add_option("--summary-trend-stats", f.summary_trend_stats, "trend stats in the summary, e.g. avg,p(99)");
  cmd->add_option("--summary-time-unit", f.summary_time_unit, "s, ms or us");
  cmd->add_option("--summary-mode", f.summary_mode, "compact (default), full, legacy (k6's pre-1.0 layout) or disabled");
  cmd->add_flag("--no-summary", f.no_summary, "deprecated: --summary-mode=disabled (no summary, handleSummary or export)");
  cmd->add_flag("--include-system-env-vars", f.include_system_env,
                  "pass this process's environment to __ENV (default: yes in a local run; agents get only -e "
                  "values unless this is given)");
  cmd->add_option("--compatibility-mode", f.compatibility_mode,
                  "extended (default: ES2015+ through Babel) or base (ES5.1 and CommonJS as written)");
  cmd->add_flag("-q,--quiet", f.quiet, "no banner and no progress");
  cmd->add_flag("--no-color", f.no_color, "no colours");
  cmd->add_flag("-v,--verbose", f.verbose, "debug output");
  cmd->add_option("--log-output", f.log_output, "stderr (default), stdout, none or file=PATH[,level=LEVEL]");
  cmd->add_option("--log-format", f.log_format, "the log's layout: text (default), json or raw");
}

int Main(int argc, char** argv) {
  RouteGrpcLogs();
  // glibc shrinks and regrows the worker threads' malloc arenas around each
  // request's allocations, an mprotect system call each time (6,000 per
  // 20,000 requests, strace -c). Keeping up to 64 MiB of freed memory
  // instead costs nothing a load generator cares about.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  CLI::App app{"barrage: a distributed load tester for gRPC services, running k6 scripts", "barrage"};
  app.require_subcommand(1);
  RunFlags f;
  CLI::App* run = app.add_subcommand("run", "run a test script (like k6 run)");
  AddTestFlags(run, f);
  run->add_option("--threads", f.threads, absl::StrCat("worker threads for VUs (default: number of cores; at most ",
                                                       MaxThreads(), " here)"));
  run->add_option("--vus-memory-check", f.vus_memory_check,
                  "refuse more VUs than the available memory holds at ~350 KiB each (default true)");
  // CLI11's own range check prints the whole range of a double (300 digits).
  auto count_of = [](const char* what) {
    return CLI::Validator(
        [what](std::string& text) -> std::string {
          int n = 0;
          if (absl::SimpleAtoi(text, &n) && n >= 1) return "";
          return absl::StrCat("expected a whole number of ", what, ", 1 or more, got '", text, "'");
        },
        "N >= 1");
  };
  run->add_option("--agents", f.agents, "start N local barrage-agent processes and split the test over them")
      ->check(count_of("agents"));
  run->add_option("--listen", f.listen, "wait for remote agents on this control address, HOST:PORT");
  run->add_option("--expect-agents", f.expect_agents, "with --listen: how many agents to wait for")
      ->check(count_of("agents"));
  run->add_option("--agent-timeout", f.agent_timeout, "how long to wait for the agents to join (default 60s)");
  run->add_option("--on-agent-loss", f.on_agent_loss,
                  "stop (default: stop the others gracefully, exit 111) or continue with the rest");
  run->add_option("--token-file", f.token_file, "a file holding the token agents must present");
  run->add_option("--tls-cert", f.tls_cert, "TLS certificate (PEM) for the control plane");
  run->add_option("--tls-key", f.tls_key, "TLS key (PEM) for the control plane");
  run->add_option("--tls-ca", f.tls_ca, "CA (PEM) that agents' client certificates must chain to (mutual TLS)");
  run->add_flag("--insecure", f.insecure,
                "allow listening beyond loopback without a way to authenticate agents (a token or mutual TLS)");
  run->add_option("--prometheus", f.prometheus, "serve the merged metrics for Prometheus at http://ADDR/metrics");
  Repeatable(run->add_option("--prometheus-label", f.prometheus_labels,
                             "a tag to export as a Prometheus label besides method, status, scenario, group, name, check "
                             "(repeatable)"));
  run->add_option("--prometheus-max-series", f.prometheus_max_series,
                  "with --prometheus: series exported at most; the rest are dropped with a warning (default 10000)");
  Repeatable(run->add_option("-o,--out", f.outs, "json=FILE or csv=FILE: every sample, in k6's layouts (.gz: gzipped; repeatable)"));
  run->add_flag("--dashboard{" + std::string(dashboard::kDefaultAddress) + "}", f.dashboard,
                "serve a live web dashboard (default " + std::string(dashboard::kDefaultAddress) +
                    "; --dashboard=ADDR for another address; also K6_WEB_DASHBOARD=true)");
  run->add_option("--report", f.report,
                  "write the web dashboard's report, one self-contained HTML file, at the end (also K6_WEB_DASHBOARD_EXPORT)");
  run->add_option("--linger", f.linger, "with --prometheus: keep serving the final metrics this long after the test");
  // `inspect` and `archive` read the same options as `run`, as in k6.
  CLI::App* inspect = app.add_subcommand("inspect", "print the script's resolved options and scenarios as JSON");
  AddTestFlags(inspect, f);
  inspect->add_flag("--execution-requirements", f.execution_requirements,
                    "also print maxVUs and totalDuration, as k6 inspect does");
  CLI::App* archive = app.add_subcommand("archive", "pack the script and everything it reads into a .tar to run later");
  AddTestFlags(archive, f);
  archive->add_option("-O,--archive-out,-o", f.archive_out, "the archive to write (default archive.tar)");
  for (CLI::App* cmd : {run, inspect, archive}) {
    cmd->add_option("--module-cache", f.module_cache,
                    "a folder of remote modules (https/HOST/PATH): used instead of the network when it holds "
                    "a module, filled when it does not (default $BARRAGE_MODULE_CACHE)");
  }
  app.add_subcommand("version", "print the version");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports by throwing; it stops here. The error and a pointer to
    // the help, not the help itself: the flag list (over 4 KB) would bury
    // the one line that matters, in a terminal as in a CI log.
    const std::string command = run->parsed()       ? " run"
                                : inspect->parsed() ? " inspect"
                                : archive->parsed() ? " archive"
                                                    : "";
    std::cerr << "error: " << e.what() << "\nRun 'barrage" << command << " --help' for the flags.\n";
    return kExitInvalidConfig;
  }
  if (app.got_subcommand("version")) {
    std::cout << "barrage v" << kVersion << "\n";
    return kExitOk;
  }
  CLI::App* cmd = run->parsed() ? run : inspect->parsed() ? inspect : archive;
  f.on_agent_loss_set = run->count("--on-agent-loss") > 0;
  f.include_system_env_set = cmd->count("--include-system-env-vars") > 0;
  if (int code = ConfigureLogging(f); code != 0) return code;
  if (app.got_subcommand("inspect")) return InspectCommand(f);
  if (app.got_subcommand("archive")) return ArchiveCommand(f);
  if (f.no_summary) {
    // cobra's deprecation notice in k6 v1.x.
    barrage::Log(Severity::kWarning, "Flag --no-summary has been deprecated, use --summary-mode=disabled instead");
  }
  if (SummaryMode(f) == "legacy") {
    barrage::Log(Severity::kWarning,
                 "The \"legacy\" summary mode has been deprecated, and will be removed by k6 v2.0. Please, migrate to "
                 "either \"compact\" or \"full\" as soon as possible.");
  }
  return RunCommand(f);
}

}  // namespace barrage::cli
