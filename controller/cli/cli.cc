#include "controller/cli/cli.h"

#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include "absl/strings/strip.h"
#include "agent/js/runtime.h"
#include "agent/session.h"
#include "agent/worker_pool.h"
#include "common/archive.h"
#include "common/config_file.h"
#include "common/metrics/prometheus_exporter.h"
#include "controller/coordinator.h"
#include "controller/outputs.h"
#include "agent/js/transform.h"
#include "common/duration.h"
#include "common/execution_segment.h"
#include "common/log.h"
#include "common/options.h"
#include "common/scenario_share.h"
#include "nlohmann/json.hpp"
#include "controller/cli/exit_codes.h"
#include "controller/summary.h"
#include "controller/thresholds.h"

extern char** environ;

namespace barrage::cli {
namespace {

constexpr char kVersion[] = "0.1.0";

std::atomic<int> g_signals{0};
void OnSignal(int) {
  if (g_signals.fetch_add(1) >= 1) _exit(kExitExternalAbort);  // a second Ctrl-C: at once
}

// What the flags of `barrage run` say, before they are merged as options.
struct RunFlags {
  std::string script;
  std::optional<int64_t> vus;
  std::optional<std::string> duration;
  std::optional<int64_t> iterations;
  std::vector<std::string> stages;  // -s D:T
  std::vector<std::string> env;
  std::vector<std::string> tags;
  std::optional<std::string> config;
  std::optional<std::string> summary_export;
  std::optional<std::string> summary_trend_stats;
  std::optional<std::string> summary_time_unit;
  bool quiet = false;
  bool no_summary = false;
  bool no_thresholds = false;
  bool no_setup = false;
  bool no_teardown = false;
  bool no_color = false;
  bool verbose = false;
  bool throw_errors = false;
  bool include_system_env = true;
  int threads = 0;
  std::optional<std::string> execution_segment;
  std::optional<std::string> execution_segment_sequence;
  bool execution_requirements = false;  // inspect
  std::string archive_out = "archive.tar";  // archive
  // Distributed modes.
  int agents = 0;
  std::optional<std::string> listen;
  int expect_agents = 0;
  std::optional<std::string> agent_timeout;
  std::string on_agent_loss = "stop";
  bool on_agent_loss_set = false;  // given on the command line
  std::optional<std::string> token_file;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_ca;
  bool insecure = false;
  // Observability.
  std::optional<std::string> prometheus;
  std::vector<std::string> prometheus_labels;
  size_t prometheus_max_series = 10000;
  std::optional<std::string> linger;
  std::vector<std::string> outs;  // --out json=FILE / csv=FILE
};

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

// The init pass's host: nothing may block in the init context (connect,
// invoke and sleep throw there before they get here).
class InitHost : public agent::js::VuHost {
 public:
  void Block(const std::function<void(Resume)>& start) override { start([] {}); }
  void Sleep(absl::Duration) override {}
  // The first Ctrl-C stops the init pass, busy loops included.
  bool Interrupted() const override { return g_signals > 0; }
  absl::Status DefineMetric(const metrics::MetricDef& def) override {
    defs[def.name] = def;
    return absl::OkStatus();
  }
  void Emit(const std::string&, const std::string&, double) override {}
  void Log(agent::js::LogLevel level, std::string_view message) override {
    static constexpr Severity kMap[] = {Severity::kDebug, Severity::kInfo, Severity::kWarning, Severity::kError};
    barrage::Log(kMap[static_cast<int>(level)], absl::string_view(message.data(), message.size()), {{"source", "console"}});
  }
  void AbortTest(const std::string& reason) override { abort_reason = reason; }

  std::map<std::string, metrics::MetricDef> defs;
  std::optional<std::string> abort_reason;
};

int ConfigError(const std::string& message) {
  barrage::Log(Severity::kError, absl::StrCat("There were problems with the specified script configuration:\n\t- ",
                                              absl::StrReplaceAll(message, {{"\n", "\n\t- "}})));
  return kExitInvalidConfig;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Stops Babel's transform on the first Ctrl-C (a large bundle takes long).
class SignalHooks : public agent::js::HeapHooks {
 public:
  bool ShouldInterrupt() const override { return g_signals > 0; }
};
const SignalHooks kSignalHooks;

// Options from K6_* environment variables (spec §4.1).
absl::StatusOr<Options> OptionsFromEnv() {
  Options o;
  auto get = [](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  if (auto v = get("K6_VUS")) {
    int64_t n;
    if (!absl::SimpleAtoi(*v, &n)) return absl::InvalidArgumentError(absl::StrCat("K6_VUS: not an integer: ", *v));
    o.vus = n;
  }
  if (auto v = get("K6_ITERATIONS")) {
    int64_t n;
    if (!absl::SimpleAtoi(*v, &n)) return absl::InvalidArgumentError(absl::StrCat("K6_ITERATIONS: not an integer: ", *v));
    o.iterations = n;
  }
  if (auto v = get("K6_DURATION")) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*v);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("K6_DURATION: ", d.status().message()));
    o.duration = *d;
  }
  if (auto v = get("K6_SUMMARY_TREND_STATS")) o.summary_trend_stats = absl::StrSplit(*v, ',');
  if (auto v = get("K6_SUMMARY_TIME_UNIT")) o.summary_time_unit = *v;
  if (auto v = get("K6_TAGS")) {
    metrics::TagSet tags;
    for (absl::string_view kv : absl::StrSplit(*v, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits(':', 1));
      tags[p.first] = p.second;
    }
    o.tags = tags;
  }
  if (get("K6_NO_SETUP")) o.no_setup = *get("K6_NO_SETUP") == "true";
  if (get("K6_NO_TEARDOWN")) o.no_teardown = *get("K6_NO_TEARDOWN") == "true";
  return o;
}

absl::StatusOr<Options> OptionsFromFlags(const RunFlags& f) {
  Options o;
  if (f.vus) o.vus = *f.vus;
  if (f.duration) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*f.duration);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--duration: ", d.status().message()));
    o.duration = *d;
  }
  if (f.iterations) o.iterations = *f.iterations;
  if (!f.stages.empty()) {
    std::vector<Stage> stages;
    for (const std::string& text : f.stages) {
      const size_t colon = text.rfind(':');
      int64_t target = 0;
      if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &target) || target < 0) {
        return absl::InvalidArgumentError(absl::StrCat("--stage: expected DURATION:TARGET like 30s:10, got '", text, "'"));
      }
      absl::StatusOr<absl::Duration> d = ParseDuration(text.substr(0, colon));
      if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--stage '", text, "': ", d.status().message()));
      stages.push_back({*d, target});
    }
    o.stages = stages;
  }
  if (f.summary_trend_stats) {
    o.summary_trend_stats = absl::StrSplit(*f.summary_trend_stats, ',');
    absl::Status st = ValidateTrendStats(*o.summary_trend_stats);
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("--summary-trend-stats: ", st.message()));
  }
  if (f.summary_time_unit) {
    if (*f.summary_time_unit != "s" && *f.summary_time_unit != "ms" && *f.summary_time_unit != "us") {
      return absl::InvalidArgumentError(absl::StrCat("--summary-time-unit: must be s, ms or us, got '", *f.summary_time_unit, "'"));
    }
    o.summary_time_unit = *f.summary_time_unit;
  }
  if (!f.tags.empty()) {
    metrics::TagSet tags;
    for (const std::string& t : f.tags) {
      size_t eq = t.find('=');
      if (eq == std::string::npos || eq == 0) {
        return absl::InvalidArgumentError(absl::StrCat("--tag: expected NAME=VALUE, got '", t, "'"));
      }
      tags[t.substr(0, eq)] = t.substr(eq + 1);
    }
    o.tags = tags;
  }
  if (f.no_setup) o.no_setup = true;
  if (f.no_teardown) o.no_teardown = true;
  if (f.throw_errors) o.throw_errors = true;
  if (f.execution_segment) {
    absl::StatusOr<ExecutionSegment> seg = ParseExecutionSegment(*f.execution_segment);
    if (!seg.ok()) return absl::InvalidArgumentError(absl::StrCat("--execution-segment: ", seg.status().message()));
    o.execution_segment = *f.execution_segment;
  }
  if (f.execution_segment_sequence) {
    absl::StatusOr<std::vector<Rational>> seq = ParseExecutionSegmentSequence(*f.execution_segment_sequence);
    if (!seq.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--execution-segment-sequence: ", seq.status().message()));
    }
    o.execution_segment_sequence = *f.execution_segment_sequence;
  }
  return o;
}

absl::Duration TotalDuration(const std::vector<Scenario>& scenarios) {
  absl::Duration max_duration;
  for (const Scenario& s : scenarios) max_duration = std::max(max_duration, s.MaxTotalDuration());
  return max_duration;
}

void PrintBanner(const std::string& script, const std::vector<Scenario>& scenarios, const ExecutionTuple& tuple,
                 int agents) {
  const absl::Duration max_duration = TotalDuration(scenarios);
  const int64_t max_vus = PeakVus(scenarios, tuple, /*max_possible=*/true);
  const Rational share = tuple.segment().length();
  const std::string percent =
      absl::StrFormat("%.2f%%", 100.0 * static_cast<double>(share.numerator()) / static_cast<double>(share.denominator()));
  std::string out = absl::StrCat(
      "\n"
      "  ____                                  \n"
      " | __ )  __ _ _ __ _ __ __ _  __ _  ___ \n"
      " |  _ \\ / _` | '__| '__/ _` |/ _` |/ _ \\\n"
      " | |_) | (_| | |  | | | (_| | (_| |  __/\n"
      " |____/ \\__,_|_|  |_|  \\__,_|\\__, |\\___|\n"
      "                             |___/  gRPC load testing\n\n",
      "     execution: ", agents == 0 ? std::string("local") : absl::StrCat("distributed over ", agents,
                                                                          agents == 1 ? " agent" : " agents"), "\n",
      "        script: ", script, "\n",
      "        output: -\n\n",
      "     scenarios: (", percent, ") ", scenarios.size(), scenarios.size() == 1 ? " scenario" : " scenarios", ", ",
      max_vus, " max VUs, ", FormatGoDuration(max_duration), " max duration (incl. graceful stop):\n");
  for (const Scenario& s : scenarios) absl::StrAppend(&out, "              * ", s.name, ": ", s.Describe(), "\n");
  out += "\n";
  fputs(out.c_str(), stdout);
  fflush(stdout);
}

std::string ProgressLine(absl::Duration elapsed, const controller::RunProgress& p, int agents) {
  int64_t tenths = absl::ToInt64Milliseconds(elapsed) / 100;
  std::string line = absl::StrFormat("running (%dm%04.1fs), %d/%d VUs, %d complete and %d interrupted iterations",
                                     tenths / 600, static_cast<double>(tenths % 600) / 10.0, p.vus_active, p.vus_max,
                                     p.iterations_completed, p.iterations_interrupted);
  if (agents > 0) absl::StrAppend(&line, absl::StrFormat(", %d/%d agents", p.agents, agents));
  return line;
}

// One line per scenario under the progress line, as k6 draws them:
// "default   [=====>        ] 10 VUs  1234 complete  45%".
std::vector<std::string> ScenarioLines(const controller::RunProgress& p, const std::vector<Scenario>& scenarios) {
  size_t width = 0;
  for (const auto& sp : p.scenarios) width = std::max(width, sp.name.size());
  std::vector<std::string> out;
  for (const auto& sp : p.scenarios) {
    constexpr int kBar = 40;
    const int filled = static_cast<int>(std::clamp(sp.progress, 0.0, 1.0) * kBar);
    std::string bar(kBar, ' ');
    for (int i = 0; i < filled; ++i) bar[i] = '=';
    if (filled < kBar && filled > 0) bar[filled] = '>';
    // k6's right-hand column: elapsed/total time, or done/total iterations.
    std::string where = absl::StrFormat("%3.0f%%", 100 * std::clamp(sp.progress, 0.0, 1.0));
    for (const Scenario& sc : scenarios) {
      if (sc.name != sp.name) continue;
      if (sc.executor == "shared-iterations" || sc.executor == "per-vu-iterations") {
        const int64_t total = sc.executor == "shared-iterations" ? sc.iterations : sc.iterations * sc.vus;
        where = absl::StrFormat("%d/%d iters", sp.iterations_completed, total);
      } else {
        const absl::Duration length = sc.RegularDuration();
        where = absl::StrCat(FormatGoDuration(absl::Milliseconds(
                                 absl::ToInt64Milliseconds(length * std::clamp(sp.progress, 0.0, 1.0)) / 100 * 100)),
                             "/", FormatGoDuration(length));
      }
    }
    out.push_back(absl::StrFormat("%-*s %s [%s] %d VUs  %d complete  %s", static_cast<int>(width), sp.name,
                                  sp.done ? "✓" : " ", bar, sp.vus_active, sp.iterations_completed, where));
  }
  return out;
}

// What the init pass and the options make of a script: everything `run`
// and `inspect` need before VUs exist.
struct Prepared {
  std::shared_ptr<agent::js::Bundle> bundle;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> cli_env;  // the -e values alone
  std::string script_options_json;            // the script's exported options
  std::vector<std::string> exported;
  Options options;
  std::vector<Scenario> scenarios;
  ExecutionTuple tuple;
  std::map<std::string, metrics::MetricDef> defs;
  std::optional<controller::ThresholdEvaluator> thresholds;
};

// Archives are read whole; this bounds a mistaken path to a huge file.
constexpr size_t kMaxArchiveBytes = 256 << 20;

// 0, or the exit code after logging what is wrong.
int Prepare(const RunFlags& flags, Prepared& out) {

  // 1. The script and the first init pass (__VU 0), which records the bundle.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(flags.script, ec)) {
    barrage::Log(Severity::kError, absl::StrCat("The moduleSpecifier \"", flags.script,
                                                "\" couldn't be found on local disk. Make sure that you've "
                                                "specified the right path to the file."));
    return kExitScriptException;
  }
  // A test archive (`barrage archive`, like `k6 archive`): the init pass
  // runs from it, never from the disk.
  std::optional<Archive> from_archive;
  if (absl::EndsWith(flags.script, ".tar")) {
    absl::StatusOr<std::string> bytes = ReadFile(flags.script);
    if (!bytes.ok()) return ConfigError(absl::StrCat(flags.script, ": cannot read"));
    absl::StatusOr<Archive> archive = ReadArchive(*bytes, flags.script, kMaxArchiveBytes);
    if (!archive.ok()) return ConfigError(std::string(archive.status().message()));
    from_archive = *std::move(archive);
  }
  const std::string main_path = from_archive ? from_archive->main_path
                                             : std::filesystem::absolute(flags.script).lexically_normal().string();
  absl::StatusOr<std::unique_ptr<agent::js::Transformer>> transformer =
      from_archive ? absl::StatusOr<std::unique_ptr<agent::js::Transformer>>(nullptr) : agent::js::Transformer::Create(&kSignalHooks);
  if (!transformer.ok()) {
    barrage::Log(Severity::kError, transformer.status().message());
    return kExitInternal;
  }
  std::map<std::string, std::string> env;
  if (flags.include_system_env) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      size_t eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  // -e values recorded in an archive, then this run's -e over them.
  if (from_archive) {
    for (const auto& [k, v] : from_archive->env) {
      env[k] = v;
      out.cli_env[k] = v;
    }
  }
  for (const std::string& kv : flags.env) {
    size_t eq = kv.find('=');
    static const std::regex kEnvName("^[a-zA-Z_][a-zA-Z0-9_]*$");
    if (eq == std::string::npos || !std::regex_match(kv.substr(0, eq), kEnvName)) {
      return ConfigError(absl::StrCat("--env: expected KEY=VALUE with KEY matching [a-zA-Z_][a-zA-Z0-9_]*, got '", kv, "'"));
    }
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
    out.cli_env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto bundle = std::make_shared<agent::js::Bundle>();
  bundle->main_path = main_path;
  if (from_archive) {
    bundle->modules = from_archive->modules;
    bundle->files = from_archive->files;
    absl::Status compiled = agent::js::Runtime::CompileBundle(*bundle);
    if (!compiled.ok()) {
      barrage::Log(Severity::kError, compiled.message());
      return kExitScriptException;
    }
  }
  InitHost init_host;
  std::string options_json;
  std::vector<std::string> exported;
  {
    agent::js::RuntimeConfig rc;
    rc.vu_id = 0;
    rc.env = env;
    rc.host = &init_host;
    if (from_archive) {
      rc.bundle = bundle;
    } else {
      rc.transformer = transformer->get();
      rc.recording = bundle.get();
    }
    absl::StatusOr<std::unique_ptr<agent::js::Runtime>> init = agent::js::Runtime::Create(std::move(rc));
    if (init_host.abort_reason) {
      barrage::Log(Severity::kError, *init_host.abort_reason);
      return kExitScriptAborted;
    }
    if (!init.ok() && g_signals > 0) {
      barrage::Log(Severity::kWarning, "stopped by a signal while initializing the script");
      return kExitExternalAbort;
    }
    if (!init.ok()) {
      barrage::Log(Severity::kError, init.status().message());
      return kExitScriptException;
    }
    absl::StatusOr<std::string> opts = (*init)->OptionsJson();
    if (!opts.ok()) return ConfigError(std::string(opts.status().message()));
    options_json = *opts;
    exported = (*init)->ExportedFunctions();
  }
  if (*transformer) transformer->reset();  // Babel's heap is large; VUs need none of it.
  if (exported.empty()) {
    barrage::Log(Severity::kError, "no exported functions in script");
    return kExitInvalidConfig;
  }

  // 2. Options: config file < script < K6_* env < flags.
  std::vector<std::string> warnings;
  Options options;
  if (flags.config) {
    absl::StatusOr<std::string> text = ReadFile(*flags.config);
    if (!text.ok()) return ConfigError(absl::StrCat("--config: cannot read ", *flags.config));
    absl::StatusOr<ConfigFile> file = ParseConfigFile(*text, *flags.config);
    if (!file.ok()) return ConfigError(std::string(file.status().message()));
    absl::StatusOr<Options> o = ParseOptionsJson(file->options_json, *flags.config, &warnings);
    if (!o.ok()) return ConfigError(std::string(o.status().message()));
    options = *o;
  }
  {
    absl::StatusOr<Options> o = ParseOptionsJson(options_json, "options", &warnings);
    if (!o.ok()) return ConfigError(std::string(o.status().message()));
    options = MergeOptions(options, *o, &warnings);
  }
  {
    absl::StatusOr<Options> o = OptionsFromEnv();
    if (!o.ok()) return ConfigError(std::string(o.status().message()));
    options = MergeOptions(options, *o, &warnings);
  }
  {
    absl::StatusOr<Options> o = OptionsFromFlags(flags);
    if (!o.ok()) return ConfigError(std::string(o.status().message()));
    options = MergeOptions(options, *o, &warnings);
  }
  absl::StatusOr<std::vector<Scenario>> scenarios = ResolveScenarios(options, &warnings);
  for (const std::string& w : warnings) barrage::Log(Severity::kWarning, w);
  if (!scenarios.ok()) return ConfigError(std::string(scenarios.status().message()));
  for (const Scenario& s : *scenarios) {
    if (std::find(exported.begin(), exported.end(), s.exec) == exported.end()) {
      return ConfigError(absl::StrCat("scenario '", s.name, "': exec: function '", s.exec,
                                      "' not found in the script's exports"));
    }
  }
  absl::StatusOr<ExecutionTuple> tuple = ExecutionTupleFromOptions(options);
  if (!tuple.ok()) return ConfigError(std::string(tuple.status().message()));
  std::map<std::string, metrics::MetricDef> defs = init_host.defs;
  for (const char* g : {"vus", "vus_max"}) defs[g] = {g, metrics::MetricType::kGauge, metrics::ValueType::kDefault};
  defs["dropped_iterations"] = {"dropped_iterations", metrics::MetricType::kCounter, metrics::ValueType::kDefault};
  absl::StatusOr<controller::ThresholdEvaluator> thresholds =
      controller::ThresholdEvaluator::Create(flags.no_thresholds || !options.thresholds
                                                 ? std::map<std::string, std::vector<ThresholdSpec>>{}
                                                 : *options.thresholds,
                                             defs);
  if (!thresholds.ok()) return ConfigError(std::string(thresholds.status().message()));
  out.bundle = bundle;
  out.env = std::move(env);
  out.script_options_json = options_json;
  out.exported = std::move(exported);
  out.options = std::move(options);
  out.scenarios = *std::move(scenarios);
  out.tuple = *std::move(tuple);
  out.defs = std::move(defs);
  out.thresholds = *std::move(thresholds);
  return 0;
}

Archive MakeArchive(const Prepared& p) {
  Archive archive;
  archive.main_path = p.bundle->main_path;
  archive.modules = p.bundle->modules;
  archive.files = p.bundle->files;
  archive.options_json = p.script_options_json;
  archive.env = p.cli_env;
  archive.barrage_version = kVersion;
  return archive;
}

int ArchiveCommand(const RunFlags& flags) {
  ConfigureLog({flags.verbose, isatty(STDERR_FILENO) != 0, false});
  Prepared p;
  if (int code = Prepare(flags, p); code != 0) return code;
  const std::string bytes = WriteArchive(MakeArchive(p));
  std::ofstream out(flags.archive_out, std::ios::binary | std::ios::trunc);
  out << bytes;
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

// Where the agents come from (DESIGN.md, "Modes of barrage run").
struct AgentPlan {
  int count = 1;
  bool embedded = true;
  std::string listen;  // the control address; empty in embedded mode
};

// The directory of this executable: barrage-agent is installed beside it.
std::string SelfDir() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

// handleSummary(data) on an agent (spec §3.6): its returned map goes to
// stdout ("stdout"), stderr ("stderr") or files (any other key, a path).
// False when it failed or returned something else than an object: the
// default summary is printed then, as k6 does.
bool HandleSummary(controller::Coordinator& coordinator, const controller::SummaryInput& in, const Options& options) {
  const nlohmann::json data =
      controller::BuildHandleSummaryData(in, isatty(STDOUT_FILENO) != 0, isatty(STDERR_FILENO) != 0);
  controller::SummaryInput plain = in, color = in;
  plain.color = false;
  color.color = true;
  absl::StatusOr<v1::LifecycleResult> r =
      coordinator.RunLifecycle("handleSummary", data.dump(), options.HandleSummaryTimeout(),
                               controller::RenderSummaryText(plain), controller::RenderSummaryText(color));
  if (!r.ok() || !r->ok()) {
    barrage::Log(Severity::kError,
                 absl::StrCat("handleSummary() failed: ", r.ok() ? r->error() : std::string(r.status().message())),
                 {{"hint", "the default summary follows"}});
    return false;
  }
  nlohmann::json out = r->has_data() ? nlohmann::json::parse(r->data_json(), nullptr, false) : nlohmann::json();
  if (!out.is_object()) {
    barrage::Log(Severity::kError, absl::StrCat("handleSummary() must return an object of outputs, got ",
                                                r->has_data() ? r->data_json() : std::string("undefined")));
    return false;
  }
  for (const auto& [key, value] : out.items()) {
    const std::string content = value.is_string() ? value.get<std::string>() : value.dump();
    if (key == "stdout") {
      fputs(content.c_str(), stdout);
      fflush(stdout);
    } else if (key == "stderr") {
      fputs(content.c_str(), stderr);
      fflush(stderr);
    } else {
      std::ofstream file(key, std::ios::binary | std::ios::trunc);
      file << content;
      file.close();
      if (!file) barrage::Log(Severity::kError, absl::StrCat("handleSummary(): cannot write ", key));
    }
  }
  return true;
}

int RunCommand(const RunFlags& command_line) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  ConfigureLog({command_line.verbose, tty, tty && !command_line.no_color});
  // From the start: a Ctrl-C at any point is counted, and the first one
  // stops the run at the next step rather than killing the process.
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  // A YAML --config may hold the run settings too; flags win over it.
  RunFlags flags = command_line;
  if (flags.config) {
    absl::StatusOr<std::string> text = ReadFile(*flags.config);
    if (!text.ok()) return ConfigError(absl::StrCat("--config: cannot read ", *flags.config));
    absl::StatusOr<ConfigFile> file = ParseConfigFile(*text, *flags.config);
    if (!file.ok()) return ConfigError(std::string(file.status().message()));
    const RunSettings& r = file->run;
    if (flags.agents == 0 && r.agents) flags.agents = *r.agents;
    if (!flags.listen && r.listen) flags.listen = r.listen;
    if (flags.expect_agents == 0 && r.expect_agents) flags.expect_agents = *r.expect_agents;
    if (!flags.agent_timeout && r.agent_timeout) flags.agent_timeout = r.agent_timeout;
    if (!command_line.on_agent_loss_set && r.on_agent_loss) flags.on_agent_loss = *r.on_agent_loss;
    if (!flags.token_file && r.token_file) flags.token_file = r.token_file;
    if (!flags.tls_cert && r.tls_cert) flags.tls_cert = r.tls_cert;
    if (!flags.tls_key && r.tls_key) flags.tls_key = r.tls_key;
    if (!flags.tls_ca && r.tls_ca) flags.tls_ca = r.tls_ca;
    if (!flags.insecure && r.insecure) flags.insecure = *r.insecure;
  }
  AgentPlan plan;
  if (flags.agents > 0 && flags.listen) {
    return ConfigError("--agents and --listen: choose one (--agents starts local agents, --listen waits for remote ones)");
  }
  if (flags.agents > 0 && (flags.tls_cert || flags.tls_key || flags.tls_ca)) {
    return ConfigError("--agents runs its agents on loopback without TLS; --tls-cert/--tls-key/--tls-ca are for --listen");
  }
  if (flags.agents > 0) {
    plan = {flags.agents, false, "127.0.0.1:0"};
  } else if (flags.listen) {
    if (flags.expect_agents <= 0) return ConfigError("--listen: --expect-agents N (N >= 1) is required");
    plan = {flags.expect_agents, false, *flags.listen};
  } else if (flags.expect_agents > 0) {
    return ConfigError("--expect-agents: only with --listen ADDR");
  }
  // Embedded: this process runs the VUs and serves no sockets.
  if (plan.embedded) agent::ConfigureProcessForVus();
  absl::Duration agent_timeout = absl::Seconds(60);
  if (flags.agent_timeout) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*flags.agent_timeout);
    if (!d.ok() || *d <= absl::ZeroDuration()) {
      return ConfigError(absl::StrCat("--agent-timeout: expected a duration like 60s, got '", *flags.agent_timeout, "'"));
    }
    agent_timeout = *d;
  }
  if (flags.on_agent_loss != "stop" && flags.on_agent_loss != "continue") {
    return ConfigError(absl::StrCat("--on-agent-loss: expected stop or continue, got '", flags.on_agent_loss, "'"));
  }
  std::string token;
  if (flags.token_file) {
    absl::StatusOr<std::string> text = ReadFile(*flags.token_file);
    if (!text.ok()) return ConfigError(absl::StrCat("--token-file: cannot read ", *flags.token_file));
    token = std::string(absl::StripAsciiWhitespace(*text));
    if (token.empty()) return ConfigError(absl::StrCat("--token-file: ", *flags.token_file, " is empty"));
  }
  if (!plan.embedded && !plan.listen.empty()) {
    const std::string host = plan.listen.substr(0, plan.listen.rfind(':'));
    const bool loopback = host == "127.0.0.1" || host == "localhost" || host == "[::1]";
    if (!loopback && !flags.tls_cert && token.empty() && !flags.insecure) {
      return ConfigError(absl::StrCat("--listen ", plan.listen, ": listening beyond loopback needs --tls-cert/--tls-key ",
                                      "or --token-file (or --insecure to accept anyone who can connect)"));
    }
  }

  Prepared prepared;
  if (int code = Prepare(flags, prepared); code != 0) return code;
  Options& options = prepared.options;
  std::vector<Scenario>& scenarios = prepared.scenarios;
  controller::ThresholdEvaluator& thresholds = *prepared.thresholds;

  // 3. The archive every agent runs from, and the control plane.
  controller::CoordinatorConfig cc;
  cc.archive = WriteArchive(MakeArchive(prepared));
  // The run's phase and threshold state, for the Prometheus endpoint.
  std::atomic<int> phase{0};  // index into kPhases
  static constexpr const char* kPhases[] = {"init", "setup", "running", "teardown", "done"};
  std::atomic<bool> thresholds_passing{true};
  absl::Duration linger;
  if (flags.linger) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*flags.linger);
    if (!d.ok() || *d < absl::ZeroDuration()) {
      return ConfigError(absl::StrCat("--linger: expected a duration like 30s, got '", *flags.linger, "'"));
    }
    linger = *d;
  }
  cc.options_json = OptionsToJson(options, scenarios);
  cc.env = prepared.env;
  cc.expected_agents = plan.count;
  cc.token = token;
  cc.threads = flags.threads;
  cc.controller_version = kVersion;
  cc.log_joins = !plan.embedded;
  if (options.execution_segment || options.execution_segment_sequence) {
    if (plan.count > 1) {
      // Splitting a segment again would not add up with the other parts of
      // the user's split: their striping is over the user's sequence.
      return ConfigError("executionSegment: a run that is itself one segment of a split runs on one agent; "
                         "drop --agents/--expect-agents or the segment options");
    }
    cc.fixed_segment = options.execution_segment.value_or("");
    cc.fixed_sequence = options.execution_segment_sequence.value_or("");
  }
  controller::Coordinator coordinator(cc);
  std::unique_ptr<metrics::PrometheusExporter> exporter;
  if (flags.prometheus) {
    metrics::ExporterConfig ec;
    ec.address = *flags.prometheus;
    ec.extra_labels = flags.prometheus_labels;
    ec.max_series = flags.prometheus_max_series;
    absl::StatusOr<std::unique_ptr<metrics::PrometheusExporter>> started = metrics::PrometheusExporter::Start(
        ec, [&coordinator](const std::function<void(metrics::MetricStore&)>& fn) { coordinator.WithMetrics(fn); },
        [&coordinator, &phase, &thresholds_passing] {
          metrics::RunState st;
          st.agents_connected = coordinator.Progress().agents;
          st.phase = kPhases[phase.load()];
          st.thresholds_passing = thresholds_passing.load();
          return st;
        });
    if (!started.ok()) return ConfigError(std::string(started.status().message()));
    exporter = *std::move(started);
    barrage::Log(Severity::kInfo, absl::StrCat("Prometheus metrics on http://", exporter->address(), "/metrics"));
  } else if (!flags.prometheus_labels.empty() || flags.linger) {
    return ConfigError("--prometheus-label and --linger: only with --prometheus ADDR");
  }
  std::vector<std::unique_ptr<controller::Output>> outputs;
  for (const std::string& spec : flags.outs) {
    absl::StatusOr<std::unique_ptr<controller::Output>> out = controller::Output::Open(spec);
    if (!out.ok()) return ConfigError(std::string(out.status().message()));
    outputs.push_back(*std::move(out));
  }
  if (!outputs.empty()) coordinator.KeepIntervals();
  // Points of the interval that just ended, to every --out.
  metrics::MetricStore controller_samples;  // the vus gauges, sampled here
  auto write_outputs = [&](absl::Time at) {
    if (outputs.empty()) return;
    metrics::MetricStore interval;
    coordinator.TakeInterval(interval);
    for (const auto& [name, def] : controller_samples.defs()) (void)interval.Define(def);
    (void)interval.Merge(controller_samples);
    controller_samples.Clear();
    for (auto& out : outputs) {
      if (absl::Status st = out->Write(interval, at); !st.ok()) barrage::Log(Severity::kError, st.message());
    }
  };
  grpc::ServerBuilder builder;
  int port = 0;
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
    builder.AddListeningPort(plan.listen, creds, &port);
  }
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.RegisterService(&coordinator);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (!plan.embedded && port == 0)) {
    barrage::Log(Severity::kError, absl::StrCat("cannot listen on ", plan.listen, " for agents (address in use or invalid)"));
    return kExitInvalidConfig;
  }
  std::vector<std::thread> local_agents;
  std::vector<std::unique_ptr<LocalAgentProcess>> children;
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
  auto shutdown = [&] {
    coordinator.End();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    for (auto& t : local_agents) t.join();
    for (auto& c : children) c->Wait(absl::Seconds(10));
  };

  {
    // In slices, so that Ctrl-C while waiting ends the run at once.
    const absl::Time give_up = absl::Now() + agent_timeout;
    bool joined = false;
    for (;;) {
      const absl::Duration left = give_up - absl::Now();
      joined = coordinator.WaitForAgents(std::max(absl::ZeroDuration(), std::min(left, absl::Milliseconds(200))));
      if (joined || left <= absl::ZeroDuration()) break;
      if (g_signals > 0) {
        barrage::Log(Severity::kWarning, "stopped while waiting for agents");
        shutdown();
        return kExitExternalAbort;
      }
    }
    if (!joined) {
      barrage::Log(Severity::kError, absl::StrCat("only ", coordinator.LiveAgents(), " of ", plan.count,
                                                  " agents joined within ", FormatGoDuration(agent_timeout)));
      shutdown();
      return kExitAgentLost;
    }
  }
  if (!flags.quiet) PrintBanner(flags.script, scenarios, prepared.tuple, plan.embedded ? 0 : plan.count);
  {
    bool script_error = false;
    const absl::Time init_start = absl::Now();
    absl::Status st = coordinator.Assign(absl::Minutes(10), &script_error);
    if (!st.ok()) {
      barrage::Log(Severity::kError, st.message());
      shutdown();
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
  }

  // 4. setup, the scenarios, teardown; metrics merged as they come.
  absl::Time test_start = absl::Now();
  int exit_code = kExitOk;
  std::optional<std::string> setup_data;
  bool setup_failed = false;
  if (coordinator.Exports("setup") && !options.no_setup.value_or(false)) {
    phase = 1;
    absl::StatusOr<v1::LifecycleResult> r = coordinator.RunLifecycle("setup", std::nullopt, options.SetupTimeout());
    if (!r.ok() || !r->ok()) {
      if (r.ok() && !r->timed_out()) {
        barrage::Log(Severity::kError, r->error(), {{"hint", "script exception"}});
      } else {
        barrage::Log(Severity::kError, r.ok() ? r->error() : std::string(r.status().message()));
      }
      exit_code = !r.ok() ? kExitAgentLost : r->timed_out() ? kExitSetupTimeout : kExitScriptException;
      if (r.ok() && !r->abort_reason().empty()) exit_code = kExitScriptAborted;
      setup_failed = true;
    } else if (r->has_data()) {
      setup_data = r->data_json();
    }
  }
  const metrics::TagSet test_tags = options.tags.value_or(metrics::TagSet{});
  coordinator.WithMetrics([&](metrics::MetricStore& total) {
    for (const auto& [name, def] : prepared.defs) (void)total.Define(def);
  });
  bool threshold_abort = false;
  bool agent_lost = false;
  if (!setup_failed) {
    // Remote agents get a moment to receive the start before it is due.
    const absl::Time start_at = absl::Now() + (plan.embedded ? absl::ZeroDuration() : absl::Milliseconds(500));
    coordinator.Start(setup_data, start_at);
    phase = 2;
    if (plan.embedded) test_start = start_at;
    bool vus_sampled = false;
    // Bounded even when an agent never finishes (a script stuck in a busy
    // loop cannot be interrupted): past the planned end plus a margin the
    // agents are stopped, and past gracefulStop plus a margin after that,
    // the ones still running are given up on.
    absl::Duration longest_graceful_stop;
    for (const Scenario& sc : scenarios) longest_graceful_stop = std::max(longest_graceful_stop, sc.graceful_stop);
    const absl::Time planned_end = start_at + TotalDuration(scenarios) + absl::Seconds(30);
    absl::Time stop_sent = absl::InfiniteFuture();
    absl::Time last_progress = absl::Now(), last_eval = absl::Now(), last_vus = absl::Now();
    int handled_signals = 0;
    int drawn_lines = 0;  // terminal lines of the last progress display
    bool stopping = false;
    while (!coordinator.AllDone()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const absl::Time now = absl::Now();
      if (now > planned_end && !stopping) {
        barrage::Log(Severity::kWarning, "the test ran past its planned end; stopping the agents");
        stopping = true;
        coordinator.Stop("the test ran past its planned end");
      }
      if (stopping && stop_sent == absl::InfiniteFuture()) stop_sent = now;
      if (now - stop_sent > longest_graceful_stop + absl::Seconds(30)) {
        for (const controller::AgentSummary& a : coordinator.Agents()) {
          if (a.state == "running") {
            barrage::Log(Severity::kError, absl::StrCat("agent ", a.name, " did not finish after being stopped; giving up on it"));
          }
        }
        agent_lost = true;
        break;
      }
      if (g_signals > handled_signals) {
        handled_signals = g_signals;
        barrage::Log(Severity::kWarning, "Stopping the test run gracefully (press Ctrl+C again to abort at once)");
        coordinator.Stop("stopped by the user");
        stopping = true;
        exit_code = kExitExternalAbort;
      }
      for (const std::string& lost : coordinator.TakeLost()) {
        barrage::Log(Severity::kError, absl::StrCat("agent ", lost, " was lost; the metrics it sent are kept"));
        agent_lost = true;
        if (flags.on_agent_loss == "stop" && !stopping) {
          stopping = true;
          coordinator.Stop("an agent was lost");
        }
      }
      if (auto reason = coordinator.abort_reason(); reason && !stopping) {
        stopping = true;
        coordinator.Stop(*reason);
      }
      const controller::RunProgress progress = coordinator.Progress();
      if (now - last_vus >= absl::Seconds(1) && (progress.vus_active > 0 || !vus_sampled)) {
        // vus and vus_max are the sums over the agents, sampled here once a
        // second as k6 samples them (agents do not send these gauges).
        last_vus = now;
        vus_sampled = true;
        coordinator.WithMetrics([&](metrics::MetricStore& total) {
          total.Add("vus", test_tags, static_cast<double>(progress.vus_active), absl::ToUnixNanos(now));
          total.Add("vus_max", test_tags, static_cast<double>(progress.vus_max), absl::ToUnixNanos(now));
        });
        if (!outputs.empty()) {
          for (const char* g : {"vus", "vus_max"}) {
            (void)controller_samples.Define({g, metrics::MetricType::kGauge, metrics::ValueType::kDefault});
          }
          controller_samples.Add("vus", test_tags, static_cast<double>(progress.vus_active), absl::ToUnixNanos(now));
          controller_samples.Add("vus_max", test_tags, static_cast<double>(progress.vus_max), absl::ToUnixNanos(now));
        }
        write_outputs(now);
      }
      if (now - last_eval >= absl::Seconds(2) && !thresholds.empty()) {
        last_eval = now;
        controller::ThresholdEvaluator::Result r;
        coordinator.WithMetrics([&](metrics::MetricStore& total) { r = thresholds.Evaluate(total, now - test_start, false); });
        thresholds_passing = r.failed_metrics.empty();
        if (r.abort && !threshold_abort) {
          threshold_abort = true;
          barrage::Log(Severity::kError, absl::StrCat("thresholds on metrics '", absl::StrJoin(r.failed_metrics, ", "),
                                                      "' were crossed; at least one has abortOnFail enabled, stopping test prematurely"));
          stopping = true;
          coordinator.Stop("thresholds crossed");
        }
      }
      if (!flags.quiet && now - last_progress >= (tty ? absl::Seconds(1) : absl::Seconds(5))) {
        last_progress = now;
        std::vector<std::string> lines = {ProgressLine(now - test_start, progress, plan.embedded ? 0 : plan.count)};
        for (std::string& l : ScenarioLines(progress, scenarios)) lines.push_back(std::move(l));
        if (tty) {
          // Redrawn in place: back to the first line drawn last time.
          if (drawn_lines > 1) fprintf(stdout, "\x1b[%dA", drawn_lines - 1);
          for (size_t i = 0; i < lines.size(); ++i) {
            fprintf(stdout, "\r\x1b[K%s%s", lines[i].c_str(), i + 1 < lines.size() ? "\n" : "");
          }
          drawn_lines = static_cast<int>(lines.size());
        } else {
          for (const std::string& l : lines) fprintf(stdout, "%s\n", l.c_str());
        }
        fflush(stdout);
      }
    }
    if (!flags.quiet && tty) {
      if (drawn_lines > 1) fprintf(stdout, "\x1b[%dA", drawn_lines - 1);
      fputs("\r\x1b[J", stdout);  // the live lines go; the final ones follow
    }
    for (const std::string& lost : coordinator.TakeLost()) {
      barrage::Log(Severity::kError, absl::StrCat("agent ", lost, " was lost; the metrics it sent are kept"));
      agent_lost = true;
    }
    if (coordinator.Exports("teardown") && !options.no_teardown.value_or(false)) {
      phase = 3;
      absl::StatusOr<v1::LifecycleResult> r = coordinator.RunLifecycle("teardown", setup_data, options.TeardownTimeout());
      if (!r.ok() || !r->ok()) {
        if (r.ok() && !r->timed_out()) {
          barrage::Log(Severity::kError, r->error(), {{"hint", "script exception"}});
        } else {
          barrage::Log(Severity::kError, r.ok() ? r->error() : std::string(r.status().message()));
        }
        if (exit_code == kExitOk) {
          exit_code = !r.ok() ? kExitAgentLost : r->timed_out() ? kExitTeardownTimeout : kExitScriptException;
          if (r.ok() && !r->abort_reason().empty()) exit_code = kExitScriptAborted;
        }
      }
    }
  }
  for (const std::string& lost : coordinator.TakeLost()) {
    barrage::Log(Severity::kError, absl::StrCat("agent ", lost, " was lost"));
    agent_lost = true;
  }
  write_outputs(absl::Now());
  for (auto& out : outputs) {
    if (absl::Status st = out->Close(); !st.ok()) barrage::Log(Severity::kError, st.message());
  }
  const absl::Duration test_duration = absl::Now() - test_start;
  const controller::RunProgress final_progress = coordinator.Progress();
  const std::vector<controller::AgentSummary> agents = coordinator.Agents();
  if (!flags.quiet) {
    fputs(absl::StrCat(ProgressLine(test_duration, final_progress, plan.embedded ? 0 : plan.count), "\n").c_str(), stdout);
    for (const std::string& l : ScenarioLines(final_progress, scenarios)) fputs(absl::StrCat(l, "\n").c_str(), stdout);
  }

  // 5. Thresholds, summary, export, exit code.
  metrics::MetricStore total;
  coordinator.WithMetrics([&](metrics::MetricStore& merged) { (void)total.Merge(merged); });
  controller::ThresholdEvaluator::Result final_eval = thresholds.Evaluate(total, test_duration, true);
  if (agent_lost && exit_code == kExitOk) exit_code = kExitAgentLost;
  if (auto reason = coordinator.abort_reason()) {
    barrage::Log(Severity::kError, *reason);
    if (exit_code == kExitOk) exit_code = kExitScriptAborted;
  }
  if (!final_eval.failed_metrics.empty()) {
    barrage::Log(Severity::kError, absl::StrCat("thresholds on metrics '", absl::StrJoin(final_eval.failed_metrics, ", "),
                                                "' have been crossed"));
    if (exit_code == kExitOk) exit_code = kExitThresholdsFailed;
  }
  if (coordinator.test_failed() && exit_code == kExitOk) exit_code = kExitTestFailed;
  thresholds_passing = final_eval.failed_metrics.empty();
  phase = 4;
  if (!flags.no_summary) {
    controller::SummaryInput in;
    in.store = &total;
    in.thresholds = final_eval.sets;
    in.trend_stats = options.TrendStats();
    in.time_unit = options.summary_time_unit.value_or("");
    in.test_run_duration = test_duration;
    in.setup_data_json = setup_data;
    in.color = isatty(STDOUT_FILENO) && !flags.no_color;
    in.no_color = flags.no_color;
    const std::string text = controller::RenderSummaryText(in);
    bool summary_handled = false;
    if (coordinator.Exports("handleSummary")) {
      summary_handled = HandleSummary(coordinator, in, options);
    }
    if (!summary_handled) {
      fputs(absl::StrCat("\n", text, "\n\n").c_str(), stdout);
      fflush(stdout);
    }
    if (flags.summary_export) {
      nlohmann::json exported = nlohmann::json::parse(controller::RenderSummaryExport(in));
      if (!plan.embedded) {
        // Per-agent totals beside k6's shape.
        nlohmann::json list = nlohmann::json::array();
        for (const controller::AgentSummary& a : agents) {
          list.push_back({{"name", a.name}, {"segment", a.segment}, {"vus", a.vus}, {"state", a.state},
                          {"iterations_completed", a.iterations_completed},
                          {"iterations_interrupted", a.iterations_interrupted}});
        }
        exported["agents"] = list;
      }
      std::ofstream out(*flags.summary_export, std::ios::binary | std::ios::trunc);
      out << exported.dump(4);
      if (!out) {
        barrage::Log(Severity::kError, absl::StrCat("--summary-export: cannot write ", *flags.summary_export));
      }
    }
  }
  shutdown();
  if (exporter != nullptr && linger > absl::ZeroDuration()) {
    // The last scrapes see the final numbers; Ctrl-C ends the wait.
    barrage::Log(Severity::kInfo, absl::StrCat("serving the final metrics for ", FormatGoDuration(linger)));
    const absl::Time until = absl::Now() + linger;
    const int signals = g_signals;
    while (absl::Now() < until && g_signals == signals) absl::SleepFor(absl::Milliseconds(100));
  }
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
