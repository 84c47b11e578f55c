#include "controller/cli/cli.h"

#include <fcntl.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/session.h"
#include "agent/worker_pool.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/metrics/prometheus_exporter.h"
#include "common/options.h"
#include "common/scenario_share.h"
#include "controller/cli/exit_codes.h"
#include "controller/cli/prepare.h"
#include "controller/cli/progress_display.h"
#include "controller/cli/report.h"
#include "controller/cli/run_loop.h"
#include "controller/cli/run_settings.h"
#include "controller/cli/signals.h"
#include "controller/cli/version.h"
#include "controller/coordinator.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace barrage::cli {
namespace {

// A local barrage-agent process (--agents N). Hand-written over
// posix_spawn: the project has no process library, and this needs only
// spawn, wait with a deadline, and kill.
class LocalAgentProcess {
 public:
  static absl::StatusOr<std::unique_ptr<LocalAgentProcess>> Spawn(const std::string& path,
                                                                  const std::vector<std::string>& args) {
    std::vector<char*> argv;
    std::string p = path;
    argv.push_back(p.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The agent's lines reach the controller over the session (with its
    // name); its own copies on stdout/stderr would print every line twice.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    // A process group of its own: a terminal's Ctrl-C reaches the controller
    // only, which then stops the agents gracefully over the session.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = 0;
    const int err = posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) return absl::InternalError(absl::StrCat("cannot start ", path, ": ", strerror(err)));
    auto out = std::make_unique<LocalAgentProcess>();
    out->pid_ = pid;
    return out;
  }
  ~LocalAgentProcess() { Wait(absl::ZeroDuration()); }
  // Waits up to `timeout` for the process to exit, then kills it.
  void Wait(absl::Duration timeout) {
    if (pid_ <= 0) return;
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) break;
      if (absl::Now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};


int ArchiveCommand(const RunFlags& flags) {
  ConfigureLog({flags.verbose, isatty(STDERR_FILENO) != 0, false});
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
  ConfigureLog({flags.verbose, isatty(STDERR_FILENO) != 0, false});
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
  std::vector<std::unique_ptr<LocalAgentProcess>> children;

  void Shutdown(controller::Coordinator& coordinator) {
    coordinator.End();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    for (auto& t : local_agents) t.join();
    for (auto& c : children) c->Wait(absl::Seconds(10));
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
int StartAgents(const RunFlags& flags, const AgentPlan& plan, ControlPlane& cp) {
  std::unique_ptr<grpc::Server>& server = cp.server;
  const int port = cp.port;
  std::vector<std::thread>& local_agents = cp.local_agents;
  std::vector<std::unique_ptr<LocalAgentProcess>>& children = cp.children;
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
      for (int i = 1; i <= plan.count; ++i) {
        std::vector<std::string> args = {"--controller", address, "--once", "--name", absl::StrCat("agent-", i)};
        if (flags.token_file) {
          args.push_back("--token-file");
          args.push_back(*flags.token_file);
        }
        if (flags.verbose) args.push_back("-v");
        auto child = LocalAgentProcess::Spawn(SelfDir() + "/barrage-agent", args);
        if (!child.ok()) {
          barrage::Log(Severity::kError, child.status().message());
          return kExitInternal;
        }
        children.push_back(*std::move(child));
      }
    }
  }
  return 0;
}

// Waits for the plan's agents, in slices so that Ctrl-C while waiting ends
// the run at once. 0 or an exit code.
int WaitForAgents(controller::Coordinator& coordinator, const AgentPlan& plan, absl::Duration agent_timeout) {
  const absl::Time give_up = absl::Now() + agent_timeout;
  for (;;) {
    const absl::Duration left = give_up - absl::Now();
    if (coordinator.WaitForAgents(std::max(absl::ZeroDuration(), std::min(left, absl::Milliseconds(200))))) return 0;
    if (left <= absl::ZeroDuration()) break;
    if (StopSignalsReceived() > 0) {
      barrage::Log(Severity::kWarning, "stopped while waiting for agents");
      return kExitExternalAbort;
    }
  }
  barrage::Log(Severity::kError, absl::StrCat("only ", coordinator.LiveAgents(), " of ", plan.count,
                                              " agents joined within ", FormatGoDuration(agent_timeout)));
  return kExitAgentLost;
}

// Sends every agent its share; they compile the script and make their
// VUs. 0 or an exit code.
int AssignAgents(controller::Coordinator& coordinator) {
  bool script_error = false;
  const absl::Time init_start = absl::Now();
  absl::Status st = coordinator.Assign(absl::Minutes(10), &script_error);
  if (!st.ok()) {
    barrage::Log(Severity::kError, st.message());
    if (script_error) return kExitScriptException;
    if (st.code() == absl::StatusCode::kUnavailable || st.code() == absl::StatusCode::kDeadlineExceeded) {
      return kExitAgentLost;
    }
    return kExitInvalidConfig;
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - init_start);
  const int64_t vus = coordinator.PlannedVus();
  barrage::Log(Severity::kDebug, absl::StrFormat("initialized %d VUs in %.3f s (%.0f VUs/s)", vus, secs,
                                                 secs > 0 ? static_cast<double>(vus) / secs : 0.0));
  return 0;
}

int RunCommand(const RunFlags& command_line) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  ConfigureLog({command_line.verbose, tty, tty && !command_line.no_color});
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
  absl::StatusOr<ControlPlaneSettings> control = ReadControlPlaneSettings(flags, *plan);
  if (!control.ok()) return ConfigError(std::string(control.status().message()));
  Prepared prepared;
  if (int code = Prepare(flags, prepared); code != 0) return code;
  absl::StatusOr<absl::Duration> linger = ParseLinger(flags);
  if (!linger.ok()) return ConfigError(std::string(linger.status().message()));

  // 2. The control plane, its observers and the agents.
  absl::StatusOr<controller::CoordinatorConfig> cc = MakeCoordinatorConfig(flags, *plan, *control, prepared);
  if (!cc.ok()) return ConfigError(std::string(cc.status().message()));
  controller::Coordinator coordinator(*std::move(cc));
  RunState state;
  absl::StatusOr<std::unique_ptr<metrics::PrometheusExporter>> exporter = StartExporter(flags, coordinator, state);
  if (!exporter.ok()) return ConfigError(std::string(exporter.status().message()));
  absl::StatusOr<std::unique_ptr<IntervalOutputs>> outputs = IntervalOutputs::Open(flags.outs, coordinator);
  if (!outputs.ok()) return ConfigError(std::string(outputs.status().message()));
  ControlPlane cp;
  if (int code = StartServer(flags, *plan, coordinator, cp); code != 0) return code;
  if (int code = StartAgents(flags, *plan, cp); code != 0) return code;
  if (int code = WaitForAgents(coordinator, *plan, control->agent_timeout); code != 0) {
    cp.Shutdown(coordinator);
    return code;
  }
  if (!flags.quiet) PrintBanner(flags.script, prepared.scenarios, prepared.tuple, plan->embedded ? 0 : plan->count);
  if (int code = AssignAgents(coordinator); code != 0) {
    cp.Shutdown(coordinator);
    return code;
  }

  // 3. setup, the scenarios, teardown; metrics merged as they come.
  const RunOutcome outcome = RunTest({coordinator, prepared, flags, *plan, state, **outputs});

  // 4. Thresholds, summary, export, exit code.
  const int exit_code = Report({coordinator, prepared, flags, *plan, state}, outcome);
  cp.Shutdown(coordinator);
  if (*exporter != nullptr && *linger > absl::ZeroDuration()) Linger(*linger);
  return exit_code;
}

}  // namespace

int Main(int argc, char** argv) {
  // glibc shrinks and regrows the worker threads' malloc arenas around each
  // request's allocations, an mprotect system call each time (6,000 per
  // 20,000 requests, strace -c). Keeping up to 64 MiB of freed memory
  // instead costs nothing a load generator cares about.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  CLI::App app{"barrage: a distributed load tester for gRPC services, running k6 scripts", "barrage"};
  app.require_subcommand(1);
  RunFlags f;
  CLI::App* run = app.add_subcommand("run", "run a test script (like k6 run)");
  run->add_option("script", f.script, "the test script (.js)")->required();
  run->add_option("-u,--vus", f.vus, "number of virtual users");
  run->add_option("-d,--duration", f.duration, "test duration, e.g. 30s");
  run->add_option("-i,--iterations", f.iterations, "total iterations, shared among the VUs");
  run->add_option("-s,--stage", f.stages, "a ramping-vus stage DURATION:TARGET, e.g. 30s:10 (repeatable)");
  run->add_option("-e,--env", f.env, "an __ENV entry, KEY=VALUE (repeatable)");
  run->add_option("--tag", f.tags, "a tag on every sample, NAME=VALUE (repeatable)");
  run->add_option("-c,--config", f.config,
                  "a JSON file of options, or a YAML file of options plus run settings under `barrage:`");
  run->add_option("--summary-export", f.summary_export, "write the end-of-test summary as JSON to FILE");
  run->add_option("--summary-trend-stats", f.summary_trend_stats, "trend stats in the summary, e.g. avg,p(99)");
  run->add_option("--summary-time-unit", f.summary_time_unit, "s, ms or us");
  run->add_flag("-q,--quiet", f.quiet, "no banner and no progress");
  run->add_flag("--no-summary", f.no_summary, "no end-of-test summary and no --summary-export");
  run->add_flag("--no-thresholds", f.no_thresholds, "do not evaluate thresholds");
  run->add_flag("--no-setup", f.no_setup, "do not run setup()");
  run->add_flag("--no-teardown", f.no_teardown, "do not run teardown()");
  run->add_flag("--no-color", f.no_color, "no colours");
  run->add_flag("-v,--verbose", f.verbose, "debug output");
  run->add_flag("-w,--throw", f.throw_errors, "throw on bad metric values");
  run->add_option("--include-system-env-vars", f.include_system_env, "pass the environment to __ENV");
  run->add_option("--threads", f.threads, "worker threads for VUs (default: number of cores)");
  run->add_option("--agents", f.agents, "start N local barrage-agent processes and split the test over them")
      ->check(CLI::PositiveNumber);
  run->add_option("--listen", f.listen, "wait for remote agents on this control address, HOST:PORT");
  run->add_option("--expect-agents", f.expect_agents, "with --listen: how many agents to wait for")
      ->check(CLI::PositiveNumber);
  run->add_option("--agent-timeout", f.agent_timeout, "how long to wait for the agents to join (default 60s)");
  run->add_option("--on-agent-loss", f.on_agent_loss,
                  "stop (default: stop the others gracefully, exit 111) or continue with the rest");
  run->add_option("--token-file", f.token_file, "a file holding the token agents must present");
  run->add_option("--tls-cert", f.tls_cert, "TLS certificate (PEM) for the control plane");
  run->add_option("--tls-key", f.tls_key, "TLS key (PEM) for the control plane");
  run->add_option("--tls-ca", f.tls_ca, "CA (PEM) that agents' client certificates must chain to (mutual TLS)");
  run->add_flag("--insecure", f.insecure, "allow listening beyond loopback without TLS or a token");
  run->add_option("--prometheus", f.prometheus, "serve the merged metrics for Prometheus at http://ADDR/metrics");
  run->add_option("--prometheus-label", f.prometheus_labels,
                  "a tag to export as a Prometheus label besides method, status, scenario, group, name, check (repeatable)");
  run->add_option("--prometheus-max-series", f.prometheus_max_series,
                  "with --prometheus: series exported at most; the rest are dropped with a warning (default 10000)");
  run->add_option("-o,--out", f.outs, "json=FILE or csv=FILE: per-interval points in k6's layouts (repeatable)");
  run->add_option("--linger", f.linger, "with --prometheus: keep serving the final metrics this long after the test");
  // `inspect` reads the same options as `run` and prints them resolved.
  CLI::App* inspect = app.add_subcommand("inspect", "print the script's resolved options and scenarios as JSON");
  for (CLI::App* cmd : {run, inspect}) {
    cmd->add_option("--execution-segment", f.execution_segment, "the part of the test to run, e.g. 1/3:2/3");
    cmd->add_option("--execution-segment-sequence", f.execution_segment_sequence,
                    "how the whole test is split, e.g. 0,1/3,2/3,1");
  }
  inspect->add_option("script", f.script, "the test script (.js)")->required();
  inspect->add_option("-u,--vus", f.vus, "number of virtual users");
  inspect->add_option("-d,--duration", f.duration, "test duration, e.g. 30s");
  inspect->add_option("-i,--iterations", f.iterations, "total iterations, shared among the VUs");
  inspect->add_option("-s,--stage", f.stages, "a ramping-vus stage DURATION:TARGET (repeatable)");
  inspect->add_option("-e,--env", f.env, "an __ENV entry, KEY=VALUE (repeatable)");
  inspect->add_option("-c,--config", f.config, "a JSON file of options");
  inspect->add_option("--include-system-env-vars", f.include_system_env, "pass the environment to __ENV");
  inspect->add_flag("--execution-requirements", f.execution_requirements,
                    "also print maxVUs and totalDuration, as k6 inspect does");
  CLI::App* archive = app.add_subcommand("archive", "pack the script and everything it reads into a .tar to run later");
  archive->add_option("script", f.script, "the test script (.js)")->required();
  archive->add_option("-O,--archive-out,-o", f.archive_out, "the archive to write (default archive.tar)");
  archive->add_option("-e,--env", f.env, "an __ENV entry recorded in the archive, KEY=VALUE (repeatable)");
  archive->add_option("--include-system-env-vars", f.include_system_env, "pass the environment to __ENV");
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
    // CLI11 reports by throwing; it stops here.
    std::cerr << "error: " << e.what() << "\n\n"
              << (run->parsed()       ? run->help()
                  : inspect->parsed() ? inspect->help()
                  : archive->parsed() ? archive->help()
                                      : app.help());
    return kExitInvalidConfig;
  }
  if (app.got_subcommand("version")) {
    std::cout << "barrage v" << kVersion << "\n";
    return kExitOk;
  }
  f.on_agent_loss_set = run->count("--on-agent-loss") > 0;
  if (app.got_subcommand("inspect")) return InspectCommand(f);
  if (app.got_subcommand("archive")) return ArchiveCommand(f);
  if (f.no_summary) {
    barrage::Log(Severity::kWarning, "--no-summary is deprecated; it also disables --summary-export");
  }
  return RunCommand(f);
}

}  // namespace barrage::cli
