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
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/options.h"

namespace barrage::cli {

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
struct ControlPlaneSettings {
  absl::Duration agent_timeout = absl::Seconds(60);
  std::string token;  // empty: none required
};
absl::StatusOr<ControlPlaneSettings> ReadControlPlaneSettings(const RunFlags& flags, const AgentPlan& plan);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_RUN_SETTINGS_H_
