#include "controller/cli/prepare.h"
#include "controller/cli/signals.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <regex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/grpc/connection.h"
#include "agent/js/cesu8.h"
#include "agent/js/runtime.h"
#include "agent/js/transform.h"
#include "common/config_file.h"
#include "common/fetch/remote_modules.h"
#include "common/scenario_share.h"
#include "common/log.h"
#include "controller/cli/exit_codes.h"
#include "controller/cli/version.h"

extern char** environ;

namespace barrage::cli {
namespace {

// Archives are read whole; this bounds a mistaken path to a huge file.
constexpr size_t kMaxArchiveBytes = 256 << 20;

// The init pass's host: nothing may block in the init context (connect,
// invoke and sleep throw there before they get here).
// Stops Babel's transform on the first Ctrl-C (a large bundle takes long).
class SignalHooks : public agent::js::HeapHooks {
 public:
  bool ShouldInterrupt() const override { return StopSignalsReceived() > 0; }
};
const SignalHooks kSignalHooks;

// The init pass's host. Nothing may block in the init context (connect,
// invoke and sleep throw there before they get here) but timers, which k6
// runs on the init context's event loop: this host keeps them in a queue
// and, while the loop waits, sleeps until the next one is due and fires it
// (on this thread, as a VU's worker would).
class InitHost : public agent::js::VuHost {
 public:
  void Block(const std::function<void(Resume)>& start) override {
    bool resumed = false;
    start([&resumed] { resumed = true; });
    while (!resumed && !timers_.empty()) RunNextTimer();
  }
  std::unique_ptr<Timer> StartTimer(absl::Duration after, std::function<void(bool fired)> fn) override {
    auto entry = std::make_shared<TimerEntry>();
    entry->due = absl::Now() + after;
    entry->fn = std::move(fn);
    timers_.push_back(entry);
    return std::make_unique<InitTimer>(entry);
  }
  void Sleep(absl::Duration) override {}
  // The first Ctrl-C stops the init pass, busy loops included.
  bool Interrupted() const override { return StopSignalsReceived() > 0; }
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

 private:
  struct TimerEntry {
    absl::Time due;
    std::function<void(bool)> fn;
    bool cancelled = false;
  };
  class InitTimer : public Timer {
   public:
    explicit InitTimer(std::shared_ptr<TimerEntry> entry) : entry_(std::move(entry)) {}
    void Cancel() override { entry_->cancelled = true; }

   private:
    std::shared_ptr<TimerEntry> entry_;
  };

  // Fires the earliest timer (a cancelled one at once, with false), after
  // sleeping until it is due; a Ctrl-C cuts the sleep short, and the
  // interrupted loop then cancels what is left.
  void RunNextTimer() {
    auto next = std::min_element(timers_.begin(), timers_.end(), [](const auto& a, const auto& b) {
      return std::make_pair(!a->cancelled, a->due) < std::make_pair(!b->cancelled, b->due);
    });
    std::shared_ptr<TimerEntry> entry = *next;
    timers_.erase(next);
    while (!entry->cancelled && !Interrupted() && absl::Now() < entry->due) {
      absl::SleepFor(std::min(entry->due - absl::Now(), absl::Milliseconds(50)));
    }
    std::function<void(bool)> fn = std::move(entry->fn);
    fn(!entry->cancelled && !Interrupted());
  }

  std::vector<std::shared_ptr<TimerEntry>> timers_;
};

// The script as given: a .js file read from disk, "-" for stdin (k6 reads
// the script from there too; its imports then resolve against the current
// directory), or a test archive (`barrage archive`, like `k6 archive`)
// whose init pass never reads the disk. 0 or an exit code.
int LoadScript(const std::string& script, std::optional<Archive>& from_archive, std::optional<std::string>& from_stdin) {
  if (script == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    from_stdin = ss.str();
    return 0;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(script, ec)) {
    barrage::Log(Severity::kError, absl::StrCat("The moduleSpecifier \"", script,
                                                "\" couldn't be found on local disk. Make sure that you've "
                                                "specified the right path to the file."));
    return kExitScriptException;
  }
  if (!absl::EndsWith(script, ".tar")) return 0;
  absl::StatusOr<std::string> bytes = ReadFile(script);
  if (!bytes.ok()) return ConfigError(absl::StrCat(script, ": cannot read"));
  absl::StatusOr<Archive> archive = ReadArchive(*bytes, script, kMaxArchiveBytes);
  if (!archive.ok()) return ConfigError(std::string(archive.status().message()));
  from_archive = *std::move(archive);
  return 0;
}

// __ENV (spec §3.4): the process environment unless turned off, the -e
// values recorded in an archive, then this run's -e over them. The -e
// values alone go to *cli_env (they are what an archive records).
int BuildEnv(const RunFlags& flags, const std::optional<Archive>& from_archive,
             std::map<std::string, std::string>& env, std::map<std::string, std::string>& cli_env) {
  if (flags.include_system_env) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      size_t eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  if (from_archive) {
    for (const auto& [k, v] : from_archive->env) {
      env[k] = v;
      cli_env[k] = v;
    }
  }
  for (const std::string& kv : flags.env) {
    size_t eq = kv.find('=');
    static const std::regex kEnvName("^[a-zA-Z_][a-zA-Z0-9_]*$");
    if (eq == std::string::npos || !std::regex_match(kv.substr(0, eq), kEnvName)) {
      return ConfigError(absl::StrCat("--env: expected KEY=VALUE with KEY matching [a-zA-Z_][a-zA-Z0-9_]*, got '", kv, "'"));
    }
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
    cli_env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return 0;
}

// What the init pass yields besides the bundle it fills.
struct InitResult {
  std::string options_json;
  std::vector<std::string> exported;
  std::map<std::string, metrics::MetricDef> defs;  // the custom metrics made in init
};

// The first init pass (__VU 0). From a .js file it transforms and records
// every module and file into *bundle; from an archive it compiles what the
// archive holds. 0 or an exit code.
int RunInitPass(const std::optional<Archive>& from_archive, const std::optional<std::string>& from_stdin,
                bool compatibility_base, const std::map<std::string, std::string>& env,
                const RemoteModuleOptions& fetch, const std::shared_ptr<agent::js::Bundle>& bundle,
                InitResult& out) {
  // A script read here goes through the transformer (in base mode it
  // passes files through as written); an archive holds its output already.
  absl::StatusOr<std::unique_ptr<agent::js::Transformer>> transformer =
      from_archive ? absl::StatusOr<std::unique_ptr<agent::js::Transformer>>(nullptr)
                   : agent::js::Transformer::Create(
                         {.hooks = &kSignalHooks,
                          .mode = compatibility_base ? agent::js::CompatibilityMode::kBase
                                                     : agent::js::CompatibilityMode::kExtended,
                          .cache_dir = agent::js::DefaultTransformCacheDir()});
  if (!transformer.ok()) {
    barrage::Log(Severity::kError, transformer.status().message());
    return kExitInternal;
  }
  if (from_stdin) {
    // The recording starts with the main module, so it is never looked
    // for on disk.
    // As for a module read from disk: JS strings hold surrogate pairs.
    const std::string source = agent::js::Utf8ToJs(*from_stdin);
    absl::StatusOr<agent::js::TransformedModule> code = (*transformer)->Transform(source, bundle->main_path);
    if (!code.ok()) {
      barrage::Log(Severity::kError, code.status().message());
      return kExitScriptException;
    }
    bundle->modules[bundle->main_path] = std::move(code->code);
    if (!code->lines.empty()) bundle->line_maps[bundle->main_path] = std::move(code->lines);
  }
  if (from_archive) {
    bundle->modules = from_archive->modules;
    bundle->line_maps = from_archive->line_maps;
    bundle->files = from_archive->files;
    absl::Status compiled = agent::js::Runtime::CompileBundle(*bundle);
    if (!compiled.ok()) {
      barrage::Log(Severity::kError, compiled.message());
      return kExitScriptException;
    }
  }
  InitHost init_host;
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
      // Remote modules are fetched here, once, and travel in the archive.
      rc.fetch_module = [fetch](const std::string& url) { return LoadRemoteModule(url, fetch); };
    }
    absl::StatusOr<std::unique_ptr<agent::js::Runtime>> init = agent::js::Runtime::Create(std::move(rc));
    if (init_host.abort_reason) {
      barrage::Log(Severity::kError, *init_host.abort_reason);
      return kExitScriptAborted;
    }
    if (!init.ok() && StopSignalsReceived() > 0) {
      barrage::Log(Severity::kWarning, "stopped by a signal while initializing the script");
      return kExitExternalAbort;
    }
    if (!init.ok()) {
      // k6 logs an exception of the init context with hint="script exception".
      if (init.status().code() == absl::StatusCode::kInvalidArgument) {
        barrage::Log(Severity::kError, init.status().message(), {{"hint", "script exception"}});
      } else {
        barrage::Log(Severity::kError, init.status().message());
      }
      return kExitScriptException;
    }
    absl::StatusOr<std::string> opts = (*init)->OptionsJson();
    if (!opts.ok()) return ConfigError(std::string(opts.status().message()));
    out.options_json = *opts;
    out.exported = (*init)->ExportedFunctions();
  }
  if (*transformer) transformer->reset();  // Babel's heap is large; VUs need none of it.
  if (out.exported.empty()) {
    barrage::Log(Severity::kError, "no exported functions in script");
    return kExitInvalidConfig;
  }
  out.defs = std::move(init_host.defs);
  return 0;
}

// Options: config file < script < K6_* env < flags (spec §3.7.1). Warnings
// about the sources go to *warnings.
absl::StatusOr<Options> MergeOptionSources(const RunFlags& flags, const std::string& script_options_json,
                                           std::vector<std::string>* warnings) {
  Options options;
  if (flags.config) {
    absl::StatusOr<std::string> text = ReadFile(*flags.config);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--config: cannot read ", *flags.config));
    absl::StatusOr<ConfigFile> file = ParseConfigFile(*text, *flags.config);
    if (!file.ok()) return file.status();
    absl::StatusOr<Options> o = ParseOptionsJson(file->options_json, *flags.config, warnings);
    if (!o.ok()) return o.status();
    options = *o;
  }
  absl::StatusOr<Options> script = ParseOptionsJson(script_options_json, "options", warnings);
  if (!script.ok()) return script.status();
  options = MergeOptions(options, *script, warnings);
  absl::StatusOr<Options> env = OptionsFromEnv();
  if (!env.ok()) return env.status();
  options = MergeOptions(options, *env, warnings);
  absl::StatusOr<Options> from_flags = OptionsFromFlags(flags);
  if (!from_flags.ok()) return from_flags.status();
  return MergeOptions(options, *from_flags, warnings);
}

// The scenarios from the options, each running a function the script
// exports. 0 or an exit code.
int ResolveTestScenarios(const Options& options, const std::vector<std::string>& exported,
                         std::vector<std::string>& warnings, std::vector<Scenario>& out) {
  absl::StatusOr<std::vector<Scenario>> scenarios = ResolveScenarios(options, &warnings);
  for (const std::string& w : warnings) barrage::Log(Severity::kWarning, w);
  if (!scenarios.ok()) return ConfigError(std::string(scenarios.status().message()));
  for (const Scenario& s : *scenarios) {
    if (std::find(exported.begin(), exported.end(), s.exec) == exported.end()) {
      return ConfigError(absl::StrCat("scenario '", s.name, "': exec: function '", s.exec,
                                      "' not found in the script's exports"));
    }
  }
  out = *std::move(scenarios);
  return 0;
}

// The test-wide TLS options (spec §1.5.1), checked once here: tlsAuth's
// certificates and keys (104 naming the entry), and a warning for what
// gRPC C++ 1.51 cannot apply per channel (README, deviations).
int CheckTlsOptions(const Options& options) {
  if (options.tls_auth) {
    for (size_t i = 0; i < options.tls_auth->size(); ++i) {
      const TlsAuth& auth = (*options.tls_auth)[i];
      absl::Status st = agent::grpc_client::CheckClientCertificate(auth.cert, auth.key, auth.password.value_or(""));
      if (!st.ok()) return ConfigError(absl::StrCat("options.tlsAuth[", i, "]: ", st.message()));
    }
  }
  if (options.tls_cipher_suites) {
    barrage::Log(Severity::kWarning,
                 "tlsCipherSuites is not applied: gRPC C++ 1.51 cannot choose cipher suites per connection; "
                 "connections negotiate from OpenSSL's defaults");
  }
  if (options.tls_version) {
    // gRPC 1.51 offers TLS 1.2 and 1.3, always both.
    const std::string& min = options.tls_version->min;
    const std::string& max = options.tls_version->max;
    if ((!min.empty() && min > "tls1.2") || (!max.empty() && max < "tls1.3")) {
      barrage::Log(Severity::kWarning, absl::StrCat("tlsVersion {min: \"", min, "\", max: \"", max,
                                                    "\"} is not enforced: gRPC C++ 1.51 negotiates TLS 1.2 or 1.3 "
                                                    "and cannot restrict that per connection"));
    } else if (!min.empty() && min < "tls1.2") {
      barrage::Log(Severity::kWarning, "tlsVersion: TLS 1.0 and 1.1 are never offered; gRPC C++ negotiates TLS 1.2 or 1.3");
    }
  }
  return 0;
}

// The metrics thresholds may name: the script's, and the ones only the
// controller emits.
std::map<std::string, metrics::MetricDef> MetricDefs(std::map<std::string, metrics::MetricDef> defs) {
  for (const char* g : {"vus", "vus_max"}) defs[g] = {g, metrics::MetricType::kGauge, metrics::ValueType::kDefault};
  defs["dropped_iterations"] = {"dropped_iterations", metrics::MetricType::kCounter, metrics::ValueType::kDefault};
  return defs;
}

}  // namespace

int Prepare(const RunFlags& flags, Prepared& out) {
  std::optional<Archive> from_archive;
  std::optional<std::string> from_stdin;
  if (int code = LoadScript(flags.script, from_archive, from_stdin); code != 0) return code;
  std::map<std::string, std::string> env;
  if (int code = BuildEnv(flags, from_archive, env, out.cli_env); code != 0) return code;
  auto bundle = std::make_shared<agent::js::Bundle>();
  if (from_archive) {
    bundle->main_path = from_archive->main_path;
  } else {
    // The error_code form: the throwing one aborts the process when the
    // current directory is gone.
    std::error_code ec;
    const std::filesystem::path main = std::filesystem::absolute(flags.script, ec);
    if (ec) {
      barrage::Log(Severity::kError, absl::StrCat(flags.script, ": cannot make the path absolute: ", ec.message()));
      return kExitScriptException;
    }
    bundle->main_path = main.lexically_normal().string();
  }
  RemoteModuleOptions fetch;
  if (flags.module_cache) {
    fetch.cache_dir = *flags.module_cache;
  } else if (const char* dir = getenv("BARRAGE_MODULE_CACHE"); dir != nullptr) {
    fetch.cache_dir = dir;
  }
  fetch.user_agent = absl::StrCat("barrage/", kVersion);
  InitResult init;
  const bool base = flags.compatibility_mode.value_or("") == "base";
  if (int code = RunInitPass(from_archive, from_stdin, base, env, fetch, bundle, init); code != 0) return code;

  std::vector<std::string> warnings;
  absl::StatusOr<Options> options = MergeOptionSources(flags, init.options_json, &warnings);
  if (!options.ok()) return ConfigError(std::string(options.status().message()));
  if (int code = CheckTlsOptions(*options); code != 0) return code;
  std::vector<Scenario> scenarios;
  if (int code = ResolveTestScenarios(*options, init.exported, warnings, scenarios); code != 0) return code;
  absl::StatusOr<ExecutionTuple> tuple = ExecutionTupleFromOptions(*options);
  if (!tuple.ok()) return ConfigError(std::string(tuple.status().message()));
  std::map<std::string, metrics::MetricDef> defs = MetricDefs(std::move(init.defs));
  absl::StatusOr<controller::ThresholdEvaluator> thresholds =
      controller::ThresholdEvaluator::Create(flags.no_thresholds || !options->thresholds
                                                 ? std::map<std::string, std::vector<ThresholdSpec>>{}
                                                 : *options->thresholds,
                                             defs);
  if (!thresholds.ok()) return ConfigError(std::string(thresholds.status().message()));

  out.bundle = bundle;
  out.env = std::move(env);
  out.script_options_json = init.options_json;
  out.exported = std::move(init.exported);
  out.options = *std::move(options);
  out.scenarios = std::move(scenarios);
  out.tuple = *std::move(tuple);
  out.defs = std::move(defs);
  out.thresholds = *std::move(thresholds);
  // Keys come from the script's paths: a bad one is the script's error.
  absl::StatusOr<std::string> archive = WriteArchive(MakeArchive(out));
  if (!archive.ok()) {
    barrage::Log(Severity::kError, archive.status().message());
    return kExitScriptException;
  }
  out.archive = *std::move(archive);
  return 0;
}

Archive MakeArchive(const Prepared& p) {
  Archive archive;
  archive.main_path = p.bundle->main_path;
  archive.modules = p.bundle->modules;
  archive.line_maps = p.bundle->line_maps;
  archive.files = p.bundle->files;
  archive.options_json = p.script_options_json;
  archive.env = p.cli_env;
  archive.barrage_version = kVersion;
  return archive;
}

}  // namespace barrage::cli
