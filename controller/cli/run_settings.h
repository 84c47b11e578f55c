// The settings of `barrage run`, `inspect` and `archive` from their
// sources, before the script is read: the command line (RunFlags), the run
// settings of a YAML --config under `barrage:` (flags win), the K6_*
// environment and the flags as options (spec §3.7.1), and the plan of where
// the agents come from. Everything here is pure apart from reading files and
// the environment; errors are kInvalidArgument naming the flag, and the
// caller reports them with ConfigError (exit 104).
#ifndef BARRAGE_CONTROLLER_CLI_RUN_SETTINGS_H_
#define BARRAGE_CONTROLLER_CLI_RUN_SETTINGS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/options.h"

namespace barrage::cli {

// What the flags of `barrage run` say, before they are merged as options.
struct RunFlags {
  std::string script;  // "-": read from stdin, as k6 does
  // -u and -i as typed: parsed into int64 with a range check (CLI11 would
  // clamp 18446744073709551615 silently).
  std::optional<std::string> vus;
  std::optional<std::string> duration;
  std::optional<std::string> iterations;
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
  bool include_system_env_set = false;  // given on the command line
  int threads = 0;
  // Options of spec §3.7.6 as flags.
  std::optional<std::string> system_tags;  // --system-tags a,b
  std::optional<std::string> user_agent;
  std::optional<std::string> min_iteration_duration;
  bool insecure_skip_tls_verify = false;
  std::optional<std::string> console_output;
  std::optional<std::string> dns;  // --dns ttl=1m,select=roundRobin,policy=any
  // Runtime settings (k6's RuntimeOptions and global flags): flags, then K6_*.
  std::optional<std::string> summary_mode;        // compact, full, legacy, disabled
  std::optional<std::string> compatibility_mode;  // extended, base
  std::optional<std::string> log_format;          // "" (text), json, raw
  std::optional<std::string> log_output;          // stderr, stdout, none, file=PATH[,level=L]
  // Refuse VU counts whose estimated memory exceeds MemAvailable.
  bool vus_memory_check = true;
  std::optional<std::string> execution_segment;
  std::optional<std::string> execution_segment_sequence;
  bool execution_requirements = false;  // inspect
  std::string archive_out = "archive.tar";  // archive
  std::optional<std::string> module_cache;  // remote modules' cache folder
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
  std::optional<std::string> dashboard;  // --dashboard[=ADDR]: "" or ADDR (controller/dashboard)
  std::optional<std::string> report;     // --report FILE.html
};

// Logs "There were problems with the specified script configuration:" and
// the message, one problem a line, as k6 does; returns kExitInvalidConfig.
int ConfigError(const std::string& message);

// The whole file; kNotFound naming the path when it cannot be read.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// A YAML --config may hold the run settings too (common/config_file.h);
// each fills the flag of the same name where the command line left it
// unset.
absl::Status ApplyConfigRunSettings(RunFlags& flags);

// Options from K6_* environment variables (spec §4.1).
absl::StatusOr<Options> OptionsFromEnv();

// The runtime settings k6 reads from K6_* variables when their flag is not
// given (K6_SUMMARY_MODE, K6_NO_SUMMARY, K6_NO_THRESHOLDS,
// K6_SUMMARY_EXPORT, K6_COMPATIBILITY_MODE, K6_INCLUDE_SYSTEM_ENV_VARS,
// K6_LOG_OUTPUT, K6_LOG_FORMAT, K6_NO_COLOR/NO_COLOR, K6_OUT), then every
// runtime setting validated; messages name the flag or variable and the
// value.
absl::Status ApplyRuntimeEnv(RunFlags& flags, const std::function<const char*(const char*)>& getenv);

// k6's --summary-mode values, --no-summary folded in: "compact", "full",
// "legacy" or "disabled".
std::string SummaryMode(const RunFlags& flags);

// The most worker threads --threads may ask for on this machine.
int MaxThreads();



// Options from the flags, validated; messages name the flag.
absl::StatusOr<Options> OptionsFromFlags(const RunFlags& flags);

// Where the agents come from (DESIGN.md, "Modes of barrage run").
struct AgentPlan {
  int count = 1;
  bool embedded = true;
  std::string listen;  // the control address; empty in embedded mode
};
absl::StatusOr<AgentPlan> MakeAgentPlan(const RunFlags& flags);

// The control plane's settings, read and checked before the script runs.
// Beyond loopback an agent must authenticate (token or mutual TLS) unless
// --insecure; --agents N runs get a random token of their own.
struct ControlPlaneSettings {
  absl::Duration agent_timeout = absl::Seconds(60);
  std::string token;  // empty: none required
};
absl::StatusOr<ControlPlaneSettings> ReadControlPlaneSettings(const RunFlags& flags, const AgentPlan& plan);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_RUN_SETTINGS_H_
