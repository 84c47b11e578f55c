#include "controller/cli/run_settings.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config_file.h"
#include "common/duration.h"
#include "common/execution_segment.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "controller/cli/exit_codes.h"
#include "controller/cli/local_agents.h"

namespace barrage::cli {
namespace {

// --threads beyond this many per core buys nothing but memory: workers
// poll completion queues and VUs are coroutines, not threads.
constexpr int kThreadsPerCore = 16;

}  // namespace

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

absl::Status ApplyConfigRunSettings(RunFlags& flags) {
  if (!flags.config) return absl::OkStatus();
  absl::StatusOr<std::string> text = ReadFile(*flags.config);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--config: cannot read ", *flags.config));
  absl::StatusOr<ConfigFile> file = ParseConfigFile(*text, *flags.config);
  if (!file.ok()) return file.status();
  const RunSettings& r = file->run;
  if (flags.agents == 0 && r.agents) flags.agents = *r.agents;
  if (!flags.listen && r.listen) flags.listen = r.listen;
  if (flags.expect_agents == 0 && r.expect_agents) flags.expect_agents = *r.expect_agents;
  if (!flags.agent_timeout && r.agent_timeout) flags.agent_timeout = r.agent_timeout;
  if (!flags.on_agent_loss_set && r.on_agent_loss) flags.on_agent_loss = *r.on_agent_loss;
  if (!flags.token_file && r.token_file) flags.token_file = r.token_file;
  if (!flags.tls_cert && r.tls_cert) flags.tls_cert = r.tls_cert;
  if (!flags.tls_key && r.tls_key) flags.tls_key = r.tls_key;
  if (!flags.tls_ca && r.tls_ca) flags.tls_ca = r.tls_ca;
  if (!flags.insecure && r.insecure) flags.insecure = *r.insecure;
  return absl::OkStatus();
}

absl::StatusOr<Options> OptionsFromEnv() { return OptionsFromEnvironment(::getenv); }

namespace {

// pflag's message for a bad integer, so users see what k6 would say.
absl::StatusOr<int64_t> ParseIntFlag(const std::string& flag, const std::string& text) {
  int64_t n = 0;
  if (absl::SimpleAtoi(text, &n)) return n;
  const bool digits = !text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos;
  return absl::InvalidArgumentError(absl::StrCat("invalid argument \"", text, "\" for \"", flag, "\" flag: ",
                                                 digits ? "value out of range (at most 9223372036854775807)"
                                                        : "not an integer"));
}

}  // namespace

absl::Status ApplyRuntimeEnv(RunFlags& flags, const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  auto boolean = [&](const char* name, bool& out) -> absl::Status {
    std::optional<std::string> v = get(name);
    if (!v) return absl::OkStatus();
    std::optional<bool> b = ParseGoBool(*v);
    if (!b) return absl::InvalidArgumentError(absl::StrCat("env var '", name, "' is not a valid boolean value: '", *v, "'"));
    out = *b;
    return absl::OkStatus();
  };
  if (!flags.summary_mode) flags.summary_mode = get("K6_SUMMARY_MODE");
  if (!flags.compatibility_mode) flags.compatibility_mode = get("K6_COMPATIBILITY_MODE");
  if (!flags.summary_export) flags.summary_export = get("K6_SUMMARY_EXPORT");
  if (!flags.log_output) flags.log_output = get("K6_LOG_OUTPUT");
  if (!flags.log_format) flags.log_format = get("K6_LOG_FORMAT");
  if (!flags.no_summary) BARRAGE_RETURN_IF_ERROR(boolean("K6_NO_SUMMARY", flags.no_summary));
  if (!flags.no_thresholds) BARRAGE_RETURN_IF_ERROR(boolean("K6_NO_THRESHOLDS", flags.no_thresholds));
  if (!flags.include_system_env_set) BARRAGE_RETURN_IF_ERROR(boolean("K6_INCLUDE_SYSTEM_ENV_VARS", flags.include_system_env));
  // k6: any non-empty K6_NO_COLOR, and NO_COLOR even when empty (no-color.org).
  if ((get("K6_NO_COLOR") && !get("K6_NO_COLOR")->empty()) || get("NO_COLOR")) flags.no_color = true;
  if (flags.outs.empty()) {
    if (std::optional<std::string> out = get("K6_OUT")) flags.outs = SplitList(*out);
  }

  if (flags.summary_mode) {
    const std::string& m = *flags.summary_mode;
    if (m != "compact" && m != "full" && m != "legacy" && m != "disabled" && !m.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--summary-mode (K6_SUMMARY_MODE): invalid summary mode '", m, "' (compact, full, legacy or disabled)"));
    }
  }
  if (flags.compatibility_mode) {
    const std::string& m = *flags.compatibility_mode;
    if (m == "experimental_enhanced") {
      return absl::InvalidArgumentError(
          "--compatibility-mode (K6_COMPATIBILITY_MODE): experimental_enhanced (TypeScript through esbuild) is not "
          "supported by Barrage; use extended (ES2015+ through Babel) or base (ES5.1 as written)");
    }
    if (m != "extended" && m != "base" && !m.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--compatibility-mode (K6_COMPATIBILITY_MODE): invalid compatibility mode \"",
                                                     m, "\". Use: \"extended\", \"base\""));
    }
  }
  if (flags.log_format) {
    const std::string& f = *flags.log_format;
    if (f != "json" && f != "raw" && f != "text" && !f.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--log-format (K6_LOG_FORMAT): unknown log format '", f, "' (json, raw, or text, the default)"));
    }
  }
  if (flags.threads < 0 || flags.threads > MaxThreads()) {
    return absl::InvalidArgumentError(absl::StrCat("--threads: ", flags.threads, " is out of range: this machine allows 1 to ",
                                                   MaxThreads(), " worker threads (", kThreadsPerCore,
                                                   " per core; 0 means one per core)"));
  }
  return absl::OkStatus();
}

std::string SummaryMode(const RunFlags& flags) {
  if (flags.no_summary) return "disabled";
  if (!flags.summary_mode || flags.summary_mode->empty()) return "compact";
  return *flags.summary_mode;
}

int MaxThreads() {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(cores) * kThreadsPerCore;
}

absl::StatusOr<Options> OptionsFromFlags(const RunFlags& f) {
  Options o;
  if (f.vus) {
    BARRAGE_ASSIGN_OR_RETURN(o.vus, ParseIntFlag("-u, --vus", *f.vus));
    if (*o.vus < 0) return absl::InvalidArgumentError(absl::StrCat("-u, --vus: must not be negative, got ", *o.vus));
  }
  if (f.duration) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*f.duration);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--duration: ", d.status().message()));
    o.duration = *d;
  }
  if (f.iterations) {
    BARRAGE_ASSIGN_OR_RETURN(o.iterations, ParseIntFlag("-i, --iterations", *f.iterations));
  }
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
  if (f.system_tags) o.system_tags = SplitList(*f.system_tags);
  if (f.user_agent) o.user_agent = *f.user_agent;
  if (f.min_iteration_duration) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*f.min_iteration_duration);
    if (!d.ok() || *d < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("--min-iteration-duration: expected a duration like 500ms, got '",
                                                     *f.min_iteration_duration, "'"));
    }
    o.min_iteration_duration = *d;
  }
  if (f.insecure_skip_tls_verify) o.insecure_skip_tls_verify = true;
  if (f.console_output) o.console_output = *f.console_output;
  if (f.dns) {
    absl::StatusOr<DnsConfig> dns = ParseDnsText(*f.dns);
    if (!dns.ok()) return absl::InvalidArgumentError(absl::StrCat("--dns: ", dns.status().message()));
    o.dns = *dns;
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

absl::StatusOr<AgentPlan> MakeAgentPlan(const RunFlags& flags) {
  if (flags.agents > 0 && flags.listen) {
    return absl::InvalidArgumentError(
        "--agents and --listen: choose one (--agents starts local agents, --listen waits for remote ones)");
  }
  if (flags.agents > 0 && (flags.tls_cert || flags.tls_key || flags.tls_ca)) {
    return absl::InvalidArgumentError(
        "--agents runs its agents on loopback without TLS; --tls-cert/--tls-key/--tls-ca are for --listen");
  }
  if (flags.agents > LocalAgents::MaxAgents()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--agents ", flags.agents, ": more local agents than this machine's limit of ", LocalAgents::MaxAgents(),
        " (4 per core); for more, run barrage-agent on other machines and --listen for them"));
  }
  if (flags.agents > 0) return AgentPlan{flags.agents, false, "127.0.0.1:0"};
  if (flags.listen) {
    if (flags.expect_agents <= 0) return absl::InvalidArgumentError("--listen: --expect-agents N (N >= 1) is required");
    return AgentPlan{flags.expect_agents, false, *flags.listen};
  }
  if (flags.expect_agents > 0) return absl::InvalidArgumentError("--expect-agents: only with --listen ADDR");
  return AgentPlan{};
}

absl::StatusOr<ControlPlaneSettings> ReadControlPlaneSettings(const RunFlags& flags, const AgentPlan& plan) {
  ControlPlaneSettings out;
  if (flags.agent_timeout) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*flags.agent_timeout);
    if (!d.ok() || *d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--agent-timeout: expected a duration like 60s, got '", *flags.agent_timeout, "'"));
    }
    out.agent_timeout = *d;
  }
  if (flags.on_agent_loss != "stop" && flags.on_agent_loss != "continue") {
    return absl::InvalidArgumentError(
        absl::StrCat("--on-agent-loss: expected stop or continue, got '", flags.on_agent_loss, "'"));
  }
  if (flags.token_file) {
    absl::StatusOr<std::string> text = ReadFile(*flags.token_file);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--token-file: cannot read ", *flags.token_file));
    out.token = std::string(absl::StripAsciiWhitespace(*text));
    if (out.token.empty()) return absl::InvalidArgumentError(absl::StrCat("--token-file: ", *flags.token_file, " is empty"));
  }
  if (flags.tls_ca && !flags.tls_cert) return absl::InvalidArgumentError("--tls-ca: only with --tls-cert and --tls-key");
  if (!plan.embedded && !plan.listen.empty()) {
    // An agent authenticates with the token or a client certificate (mutual
    // TLS); server-only TLS proves the controller to the agents, nothing more.
    const std::string host = plan.listen.substr(0, plan.listen.rfind(':'));
    const bool loopback = absl::StartsWith(host, "127.") || host == "localhost" || host == "[::1]";
    if (!loopback && out.token.empty() && !flags.tls_ca && !flags.insecure) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen ", plan.listen, ": listening beyond loopback needs a way to authenticate agents: --token-file, "
          "or mutual TLS (--tls-cert/--tls-key with --tls-ca); server-only TLS authenticates the controller, not the "
          "agents (--insecure accepts anyone who can connect)"));
    }
  }
  if (flags.agents > 0 && out.token.empty()) {
    // A per-run token, so that other users of this machine cannot join.
    absl::StatusOr<std::string> random = RandomToken();
    if (!random.ok()) return random.status();
    out.token = *random;
  }
  return out;
}

}  // namespace barrage::cli
