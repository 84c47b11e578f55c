// The test's options (spec §3.7): parsed from the script's exported
// `options`, a JSON config file, K6_* environment variables and CLI flags,
// merged by precedence, validated, and turned into scenarios.
//
// Every problem found is collected, so a user sees them all at once; the
// CLI prints them under "There were problems with the specified script
// configuration:" and exits 104.
#ifndef BARRAGE_COMMON_OPTIONS_H_
#define BARRAGE_COMMON_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metric.h"

namespace barrage {

struct Stage {
  absl::Duration duration;
  int64_t target = 0;
};

struct ThresholdSpec {
  std::string expression;  // "p(95)<200"
  bool abort_on_fail = false;
  absl::Duration delay_abort_eval = absl::ZeroDuration();
};

// One scenario, after shortcuts are resolved. Only the fields of its
// executor are meaningful.
struct Scenario {
  std::string name;
  std::string executor;  // "shared-iterations", "per-vu-iterations", "constant-vus", ...
  int64_t vus = 1;
  int64_t iterations = 1;
  absl::Duration duration = absl::ZeroDuration();
  absl::Duration max_duration = absl::Minutes(10);
  absl::Duration start_time = absl::ZeroDuration();
  absl::Duration graceful_stop = absl::Seconds(30);
  std::string exec = "default";
  std::map<std::string, std::string> env;
  metrics::TagSet tags;
  // constant-arrival-rate: `rate` iterations per `time_unit`, started by
  // the clock whatever the VUs do; pre_allocated_vus made at start, more
  // (up to max_vus) on demand.
  int64_t rate = 0;
  absl::Duration time_unit = absl::Seconds(1);
  int64_t pre_allocated_vus = 0;
  int64_t max_vus = 0;
  // ramping-arrival-rate: from start_rate through `stages` (targets are
  // rates per time_unit), changing linearly inside each stage.
  int64_t start_rate = 0;
  bool IsConstantArrivalRate() const { return executor == "constant-arrival-rate"; }
  bool IsRampingArrivalRate() const { return executor == "ramping-arrival-rate"; }
  bool IsArrivalRate() const { return IsConstantArrivalRate() || IsRampingArrivalRate(); }
  // The offset from the scenario's start of arrival k (0-based) on the
  // unsplit schedule: k*timeUnit/rate for constant-arrival-rate; for
  // ramping-arrival-rate the moment the integral of the rate reaches k+1
  // (spec §3.7.4). InfiniteDuration when it falls after the last stage.
  absl::Duration ArrivalOffset(int64_t k) const;
  // ramping-vus: from start_vus through the stages; VUs beyond the planned
  // count finish their iteration within graceful_ramp_down.
  int64_t start_vus = 1;
  std::vector<Stage> stages;
  absl::Duration graceful_ramp_down = absl::Seconds(30);
  bool IsRampingVus() const { return executor == "ramping-vus"; }
  // The planned number of VUs at `t` after the scenario's start (spec
  // §3.7.4): a + trunc((b - a) * t / D) inside a stage from a to b over D.
  int64_t PlannedVus(absl::Duration t) const;
  absl::Duration StagesDuration() const;
  // VUs made before the test starts.
  int64_t InitialVus() const;
  // The most time the scenario can take, gracefulStop included.
  absl::Duration MaxTotalDuration() const;
  // The scenario's regular end relative to its start (duration,
  // maxDuration or the stages' sum), before gracefulStop.
  absl::Duration RegularDuration() const;
  // k6's banner line: "10 looping VUs for 10s (gracefulStop: 30s)".
  std::string Describe() const;
};

// tlsVersion (spec §3.7.6): "tls1.0" .. "tls1.3"; empty means no bound.
// A string option sets both ends.
struct TlsVersions {
  std::string min;
  std::string max;
};

// One tlsAuth entry: a client certificate (PEM) for the listed domains
// ("*.example.com" allowed); password decrypts a legacy encrypted PEM key.
struct TlsAuth {
  std::vector<std::string> domains;
  std::string cert;
  std::string key;
  std::optional<std::string> password;
};

// k6's `dns` option (lib/types/dns.go), as given: each field unset until a
// source sets it, merged field by field as k6 merges them. Values are
// checked when parsed (ParseDnsTtl, IsDnsSelect, IsDnsPolicy).
struct DnsConfig {
  std::optional<std::string> ttl;     // "inf", "0", a duration, a number of ms
  std::optional<std::string> select;  // first, random, roundRobin
  std::optional<std::string> policy;  // preferIPv4, preferIPv6, onlyIPv4, onlyIPv6, any
  // After k6's defaults (ttl 5m, select random, policy preferIPv4).
  std::string Select() const { return select.value_or("random"); }
  std::string Policy() const { return policy.value_or("preferIPv4"); }
  absl::Duration Ttl() const;  // InfiniteDuration for "inf", zero for "0" (no cache)
};

// The dns option's ttl as k6's runner reads it: "inf" (k6 caches for a
// year; here for ever), "0" (no cache), else a duration ("1m", "2d",
// "1000" is ms). kInvalidArgument `invalid DNS TTL: <value>`.
absl::StatusOr<absl::Duration> ParseDnsTtl(const std::string& text);
// The text form of --dns and K6_DNS ("ttl=1m,select=roundRobin,policy=any"),
// with k6's errors (`unknown DNS configuration field: x`, `no value for key
// x`, `x does not belong to DNSSelect values`). k6's default text itself
// sets nothing, so the default of its --dns flag overrides nothing.
absl::StatusOr<DnsConfig> ParseDnsText(const std::string& text);

// Each field is unset until a source sets it; Merge fills from higher sources.
struct Options {
  std::optional<int64_t> vus;
  std::optional<absl::Duration> duration;
  std::optional<int64_t> iterations;
  std::optional<std::vector<Stage>> stages;
  std::optional<std::vector<Scenario>> scenarios;
  std::optional<std::map<std::string, std::vector<ThresholdSpec>>> thresholds;
  std::optional<std::vector<std::string>> summary_trend_stats;
  std::optional<std::string> summary_time_unit;
  std::optional<absl::Duration> setup_timeout;
  std::optional<absl::Duration> teardown_timeout;
  std::optional<absl::Duration> handle_summary_timeout;
  std::optional<bool> no_setup;
  std::optional<bool> no_teardown;
  std::optional<bool> throw_errors;  // `throw`
  std::optional<metrics::TagSet> tags;
  std::optional<std::vector<std::string>> system_tags;
  std::optional<std::string> user_agent;
  std::optional<absl::Duration> min_iteration_duration;
  std::optional<bool> insecure_skip_tls_verify;
  std::optional<TlsVersions> tls_version;
  std::optional<std::vector<std::string>> tls_cipher_suites;  // k6's (Go's) names, validated
  std::optional<std::vector<TlsAuth>> tls_auth;
  DnsConfig dns;
  // hosts (k6's NullHosts): lower-case name patterns ("api.test",
  // "api.test:443", "*.test", "*.test:443") to an address ("127.0.0.2" or
  // "127.0.0.2:8443", "[::1]:8443"), as given. Checked when parsed.
  std::optional<std::map<std::string, std::string>> hosts;
  // K6_CONSOLE_OUTPUT / --console-output; like k6, not read from a script
  // or config file (k6's field is json:"-").
  std::optional<std::string> console_output;
  // Options k6 accepts that do nothing for gRPC (HTTP-only, cloud, DNS,
  // ...): their JSON as given, by key, so exec.test.options shows them.
  std::map<std::string, std::string> passthrough;
  // Spec §3.9, as written ("1/3:2/3", "0,1/3,2/3,1"); validated when parsed.
  std::optional<std::string> execution_segment;
  std::optional<std::string> execution_segment_sequence;

  // Values after defaults.
  std::vector<std::string> TrendStats() const;
  absl::Duration SetupTimeout() const { return setup_timeout.value_or(absl::Seconds(60)); }
  absl::Duration TeardownTimeout() const { return teardown_timeout.value_or(absl::Seconds(60)); }
  absl::Duration HandleSummaryTimeout() const { return handle_summary_timeout.value_or(absl::Seconds(120)); }
  // The system tags emitted (spec §2.3): systemTags without the names k6
  // does not know, sorted; k6's default set when unset.
  std::vector<std::string> SystemTags() const;
  // userAgent, or Barrage's default "Barrage/<version>" (k6: "Grafana k6/<version>").
  std::string UserAgent(const std::string& version) const;
};

// k6's system tags, sorted: every name (spec §2.3), and the ones emitted
// when systemTags is unset (all but vu, iter, ip and ocsp_status).
const std::vector<std::string>& KnownSystemTags();
const std::vector<std::string>& DefaultSystemTags();

// A comma-separated systemTags value (--system-tags, K6_SYSTEM_TAGS), as
// k6 splits it: entries trimmed, empty ones dropped.
std::vector<std::string> SplitList(const std::string& text);

// A boolean as k6 reads K6_* variables (Go's strconv.ParseBool: 1, t, T,
// true, TRUE, True and the same for false); nullopt for anything else.
std::optional<bool> ParseGoBool(const std::string& text);

// tlsVersion's names ("tls1.0" .. "tls1.3") and tlsCipherSuites' (Go's
// names, as k6 takes them).
bool IsTlsVersionName(const std::string& name);
bool IsTlsCipherSuiteName(const std::string& name);

// Parses a JSON object of options (the script's exports.options, a config
// file). `where` prefixes messages ("options", "config.json"). Unknown keys
// are reported in *warnings; bad values are errors (all of them, one per
// line, in the status message).
absl::StatusOr<Options> ParseOptionsJson(const std::string& json, const std::string& where,
                                         std::vector<std::string>* warnings);

// higher over lower, key by key; a higher source that sets any of
// duration, iterations, stages or scenarios wipes all four from lower. A
// higher source that sets only `vus` of the five replaces lower's scenarios
// (k6 v2.1, spec §3.7.2 step 4), with a warning in *warnings.
Options MergeOptions(const Options& lower, const Options& higher, std::vector<std::string>* warnings = nullptr);

// Shortcuts to scenarios (spec §3.7.2), then validation of every scenario.
// kInvalidArgument naming the scenario and field.
absl::StatusOr<std::vector<Scenario>> ResolveScenarios(const Options& options,
                                                       std::vector<std::string>* warnings);

// The consolidated options as k6 shows them in `k6 inspect` and
// exec.test.options: the derived `scenarios` (every field of each executor,
// durations as Go-style strings), without vus/duration/iterations/stages;
// options nobody set are null.
std::string OptionsToJson(const Options& options, const std::vector<Scenario>& scenarios);

// The options of one source that a K6_* environment variable sets (spec
// §4.1), read through `getenv` (the process environment in production).
// Bad values are kInvalidArgument naming the variable and the value.
absl::StatusOr<Options> OptionsFromEnvironment(const std::function<const char*(const char*)>& getenv);

// Validates summaryTrendStats entries (avg, min, med, max, count, p(N)).
absl::Status ValidateTrendStats(const std::vector<std::string>& stats);

}  // namespace barrage

#endif  // BARRAGE_COMMON_OPTIONS_H_
