#include "common/options.h"

#include <algorithm>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/duration.h"
#include "nlohmann/json.hpp"

namespace barrage {
namespace {

using nlohmann::json;

// Collects every problem so that one run reports them all.
class Problems {
 public:
  void Add(std::string p) { list_.push_back(std::move(p)); }
  bool empty() const { return list_.empty(); }
  absl::Status ToStatus() const { return absl::InvalidArgumentError(absl::StrJoin(list_, "\n")); }

 private:
  std::vector<std::string> list_;
};

std::optional<absl::Duration> ReadDuration(const json& v, const std::string& where, Problems& p) {
  if (v.is_number()) return DurationFromMillis(v.get<double>());
  if (v.is_string()) {
    absl::StatusOr<absl::Duration> d = ParseDuration(v.get<std::string>());
    if (d.ok()) return *d;
    p.Add(absl::StrCat(where, ": ", d.status().message()));
    return std::nullopt;
  }
  p.Add(absl::StrCat(where, ": expected a duration (a string like \"30s\" or a number of ms), got ", v.dump()));
  return std::nullopt;
}

std::optional<int64_t> ReadInt(const json& v, const std::string& where, Problems& p) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  p.Add(absl::StrCat(where, ": expected an integer, got ", v.dump()));
  return std::nullopt;
}

std::optional<bool> ReadBool(const json& v, const std::string& where, Problems& p) {
  if (v.is_boolean()) return v.get<bool>();
  p.Add(absl::StrCat(where, ": expected a boolean, got ", v.dump()));
  return std::nullopt;
}

std::optional<std::string> ReadString(const json& v, const std::string& where, Problems& p) {
  if (v.is_string()) return v.get<std::string>();
  p.Add(absl::StrCat(where, ": expected a string, got ", v.dump()));
  return std::nullopt;
}

std::optional<std::map<std::string, std::string>> ReadStringMap(const json& v, const std::string& where,
                                                                Problems& p) {
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected an object, got ", v.dump()));
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->is_string()) out[it.key()] = it->get<std::string>();
    else if (it->is_number() || it->is_boolean()) out[it.key()] = it->dump();
    else p.Add(absl::StrCat(where, ".", it.key(), ": expected a string, got ", it->dump()));
  }
  return out;
}

std::optional<std::vector<Stage>> ReadStages(const json& v, const std::string& where, Problems& p) {
  if (!v.is_array()) {
    p.Add(absl::StrCat(where, ": expected an array of {duration, target}, got ", v.dump()));
    return std::nullopt;
  }
  std::vector<Stage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string w = absl::StrCat(where, "[", i, "]");
    const json& s = v[i];
    if (!s.is_object()) {
      p.Add(absl::StrCat(w, ": expected {duration, target}, got ", s.dump()));
      continue;
    }
    Stage stage;
    if (s.contains("duration")) {
      if (auto d = ReadDuration(s["duration"], w + ".duration", p)) stage.duration = *d;
    } else {
      p.Add(w + ".duration: required");
    }
    if (s.contains("target")) {
      if (auto t = ReadInt(s["target"], w + ".target", p)) {
        if (*t < 0) p.Add(absl::StrCat(w, ".target: must not be negative, got ", *t));
        stage.target = *t;
      }
    }
    out.push_back(stage);
  }
  return out;
}

const std::set<std::string>& CommonScenarioKeys() {
  static const std::set<std::string> keys = {"executor", "startTime", "gracefulStop", "exec",
                                             "env",      "tags",      "options"};
  return keys;
}

const std::map<std::string, std::set<std::string>>& ExecutorKeys() {
  static const std::map<std::string, std::set<std::string>> keys = {
      {"shared-iterations", {"vus", "iterations", "maxDuration"}},
      {"per-vu-iterations", {"vus", "iterations", "maxDuration"}},
      {"constant-vus", {"vus", "duration"}},
      {"constant-arrival-rate", {"rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"}},
      {"ramping-vus", {"startVUs", "stages", "gracefulRampDown"}},
  };
  return keys;
}

void ReadScenario(const std::string& name, const json& v, Problems& p, std::vector<Scenario>& out) {
  const std::string where = absl::StrCat("options.scenarios.", name);
  static const std::regex kNameRe("^[0-9a-zA-Z_-]+$");
  if (!std::regex_match(name, kNameRe)) {
    p.Add(absl::StrCat(where, ": invalid scenario name '", name, "' (allowed: letters, digits, _ and -)"));
  }
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected an object, got ", v.dump()));
    return;
  }
  Scenario s;
  s.name = name;
  if (!v.contains("executor") || !v["executor"].is_string()) {
    p.Add(where + ".executor: required (e.g. \"constant-vus\")");
    return;
  }
  s.executor = v["executor"].get<std::string>();
  if (s.executor == "externally-controlled") {
    p.Add(where + ".executor: the externally-controlled executor is not supported");
    return;
  }
  auto keys = ExecutorKeys().find(s.executor);
  if (keys == ExecutorKeys().end()) {
    static const std::set<std::string> kLater = {"ramping-arrival-rate"};
    if (kLater.count(s.executor)) {
      // TODO(#4): the remaining executors come with the scenarios issue.
      p.Add(absl::StrCat(where, ".executor: '", s.executor, "' is not implemented yet in this version of barrage"));
    } else {
      p.Add(absl::StrCat(where, ".executor: unknown executor '", s.executor,
                         "' (known: shared-iterations, per-vu-iterations, constant-vus, ramping-vus, "
                         "constant-arrival-rate, ramping-arrival-rate)"));
    }
    return;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!CommonScenarioKeys().count(it.key()) && !keys->second.count(it.key())) {
      p.Add(absl::StrCat(where, ": unknown field '", it.key(), "' for executor ", s.executor));
    }
  }
  auto get = [&](const char* key) -> const json* { return v.contains(key) ? &v[key] : nullptr; };
  if (auto* x = get("vus")) if (auto n = ReadInt(*x, where + ".vus", p)) s.vus = *n;
  if (auto* x = get("iterations")) if (auto n = ReadInt(*x, where + ".iterations", p)) s.iterations = *n;
  if (auto* x = get("duration")) if (auto d = ReadDuration(*x, where + ".duration", p)) s.duration = *d;
  if (auto* x = get("maxDuration")) if (auto d = ReadDuration(*x, where + ".maxDuration", p)) s.max_duration = *d;
  if (auto* x = get("startTime")) if (auto d = ReadDuration(*x, where + ".startTime", p)) s.start_time = *d;
  if (auto* x = get("gracefulStop")) if (auto d = ReadDuration(*x, where + ".gracefulStop", p)) s.graceful_stop = *d;
  if (auto* x = get("exec")) if (auto e = ReadString(*x, where + ".exec", p)) s.exec = *e;
  if (auto* x = get("env")) if (auto e = ReadStringMap(*x, where + ".env", p)) s.env = *e;
  if (auto* x = get("tags")) if (auto t = ReadStringMap(*x, where + ".tags", p)) s.tags = *t;
  if (auto* x = get("rate")) if (auto n = ReadInt(*x, where + ".rate", p)) s.rate = *n;
  if (auto* x = get("timeUnit")) if (auto d = ReadDuration(*x, where + ".timeUnit", p)) s.time_unit = *d;
  if (auto* x = get("preAllocatedVUs")) if (auto n = ReadInt(*x, where + ".preAllocatedVUs", p)) s.pre_allocated_vus = *n;
  s.max_vus = s.pre_allocated_vus;
  if (auto* x = get("maxVUs")) if (auto n = ReadInt(*x, where + ".maxVUs", p)) s.max_vus = *n;
  if (auto* x = get("startVUs")) if (auto n = ReadInt(*x, where + ".startVUs", p)) s.start_vus = *n;
  if (auto* x = get("stages")) if (auto st = ReadStages(*x, where + ".stages", p)) s.stages = *st;
  if (auto* x = get("gracefulRampDown")) if (auto d = ReadDuration(*x, where + ".gracefulRampDown", p)) s.graceful_ramp_down = *d;
  if (s.IsRampingVus() && !get("stages")) p.Add(where + ".stages: required for ramping-vus");
  if ((s.executor == "constant-vus" || s.IsArrivalRate()) && !get("duration")) {
    p.Add(absl::StrCat(where, ".duration: required for ", s.executor));
  }
  if (s.IsArrivalRate()) {
    if (!get("rate")) p.Add(where + ".rate: required for constant-arrival-rate");
    if (!get("preAllocatedVUs")) p.Add(where + ".preAllocatedVUs: required for constant-arrival-rate");
  }
  out.push_back(std::move(s));
}

absl::Status ValidateScenario(const Scenario& s) {
  const std::string where = absl::StrCat("scenario '", s.name, "'");
  if (s.IsArrivalRate()) {
    if (s.rate <= 0) return absl::InvalidArgumentError(absl::StrCat(where, ": rate must be greater than 0, got ", s.rate));
    if (s.time_unit <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": timeUnit must be greater than 0, got ", FormatGoDuration(s.time_unit)));
    }
    if (s.pre_allocated_vus < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": preAllocatedVUs must not be negative, got ", s.pre_allocated_vus));
    }
    if (s.max_vus < s.pre_allocated_vus) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": maxVUs (", s.max_vus,
                                                     ") must not be less than preAllocatedVUs (", s.pre_allocated_vus, ")"));
    }
    if (s.max_vus <= 0) return absl::InvalidArgumentError(absl::StrCat(where, ": maxVUs must be greater than 0"));
    if (s.duration < absl::Seconds(1)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duration must be at least 1s, got ", FormatGoDuration(s.duration)));
    }
    if (s.start_time < absl::ZeroDuration()) return absl::InvalidArgumentError(where + ": startTime must not be negative");
    if (s.graceful_stop < absl::ZeroDuration()) return absl::InvalidArgumentError(where + ": gracefulStop must not be negative");
    return absl::OkStatus();
  }
  if (s.IsRampingVus()) {
    if (s.start_vus < 0) return absl::InvalidArgumentError(absl::StrCat(where, ": startVUs must not be negative, got ", s.start_vus));
    if (s.stages.empty()) return absl::InvalidArgumentError(where + ": stages must not be empty");
    for (size_t i = 0; i < s.stages.size(); ++i) {
      if (s.stages[i].duration < absl::ZeroDuration()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": stages[", i, "].duration must not be negative"));
      }
      if (s.stages[i].target < 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": stages[", i, "].target must not be negative"));
      }
    }
    if (s.InitialVus() <= 0) {
      return absl::InvalidArgumentError(where + ": either startVUs or one of the stages' targets must be greater than 0");
    }
    if (s.graceful_ramp_down < absl::ZeroDuration()) return absl::InvalidArgumentError(where + ": gracefulRampDown must not be negative");
    if (s.graceful_stop < absl::ZeroDuration()) return absl::InvalidArgumentError(where + ": gracefulStop must not be negative");
    return absl::OkStatus();
  }
  if (s.vus <= 0) return absl::InvalidArgumentError(absl::StrCat(where, ": vus must be greater than 0, got ", s.vus));
  if (s.start_time < absl::ZeroDuration()) return absl::InvalidArgumentError(where + ": startTime must not be negative");
  if (s.graceful_stop < absl::ZeroDuration()) return absl::InvalidArgumentError(where + ": gracefulStop must not be negative");
  if (s.executor == "constant-vus") {
    if (s.duration < absl::Seconds(1)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duration must be at least 1s, got ", FormatGoDuration(s.duration)));
    }
  } else {
    if (s.iterations <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": iterations must be greater than 0, got ", s.iterations));
    }
    if (s.executor == "shared-iterations" && s.iterations < s.vus) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the number of iterations (", s.iterations,
                                                     ") can't be less than the number of VUs (", s.vus, ")"));
    }
    if (s.max_duration < absl::Seconds(1)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": maxDuration must be at least 1s, got ", FormatGoDuration(s.max_duration)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int64_t Scenario::InitialVus() const {
  if (IsArrivalRate()) return pre_allocated_vus;
  if (IsRampingVus()) {
    int64_t most = start_vus;
    for (const Stage& st : stages) most = std::max(most, st.target);
    return most;
  }
  return vus;
}

absl::Duration Scenario::StagesDuration() const {
  absl::Duration total;
  for (const Stage& st : stages) total += st.duration;
  return total;
}

int64_t Scenario::PlannedVus(absl::Duration t) const {
  int64_t from = start_vus;
  absl::Duration stage_start;
  for (const Stage& st : stages) {
    const absl::Duration end = stage_start + st.duration;
    if (t < end) {
      const double fraction = absl::FDivDuration(t - stage_start, st.duration);
      return from + static_cast<int64_t>(static_cast<double>(st.target - from) * fraction);  // trunc toward 0
    }
    from = st.target;
    stage_start = end;
  }
  return from;
}

absl::Duration Scenario::MaxTotalDuration() const {
  if (IsRampingVus()) return start_time + StagesDuration() + graceful_stop;
  if (executor == "constant-vus" || IsArrivalRate()) return start_time + duration + graceful_stop;
  return start_time + max_duration + graceful_stop;
}

std::string Scenario::Describe() const {
  std::string extra = absl::StrCat("gracefulStop: ", FormatGoDuration(graceful_stop));
  if (exec != "default") extra = absl::StrCat("exec: ", exec, ", ", extra);
  if (start_time > absl::ZeroDuration()) extra = absl::StrCat("startTime: ", FormatGoDuration(start_time), ", ", extra);
  if (executor == "constant-vus") {
    return absl::StrCat(vus, " looping VUs for ", FormatGoDuration(duration), " (", extra, ")");
  }
  if (IsRampingVus()) {
    return absl::StrCat("Up to ", InitialVus(), " looping VUs for ", FormatGoDuration(StagesDuration()), " over ",
                        stages.size(), " stages (gracefulRampDown: ", FormatGoDuration(graceful_ramp_down), ", ",
                        extra, ")");
  }
  if (IsArrivalRate()) {
    const double per_second = static_cast<double>(rate) / absl::ToDoubleSeconds(time_unit);
    const std::string vus_text = max_vus > pre_allocated_vus ? absl::StrCat(pre_allocated_vus, "-", max_vus)
                                                             : absl::StrCat(max_vus);
    return absl::StrCat(absl::StrFormat("%.2f", per_second), " iterations/s for ", FormatGoDuration(duration),
                        " (maxVUs: ", vus_text, ", ", extra, ")");
  }
  if (executor == "per-vu-iterations") {
    return absl::StrCat(iterations, " iterations for each of ", vus, " VUs (maxDuration: ",
                        FormatGoDuration(max_duration), ", ", extra, ")");
  }
  return absl::StrCat(iterations, " iterations shared among ", vus, " VUs (maxDuration: ",
                      FormatGoDuration(max_duration), ", ", extra, ")");
}

std::vector<std::string> Options::TrendStats() const {
  if (summary_trend_stats) return *summary_trend_stats;
  return {"avg", "min", "med", "max", "p(90)", "p(95)"};
}

absl::Status ValidateTrendStats(const std::vector<std::string>& stats) {
  static const std::regex kPercentile(R"(^p\((\d+(\.\d+)?)\)$)");
  for (const std::string& s : stats) {
    if (s == "avg" || s == "min" || s == "med" || s == "max" || s == "count") continue;
    std::smatch m;
    if (std::regex_match(s, m, kPercentile) && std::stod(m[1].str()) <= 100) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        "summaryTrendStats: stat '", s, "' is not supported (use avg, min, med, max, count or p(N) with 0 <= N <= 100)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Options> ParseOptionsJson(const std::string& text, const std::string& where,
                                         std::vector<std::string>* warnings) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
  if (root.is_null()) return Options{};
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object, got ", root.dump()));
  Options o;
  Problems p;
  // Accepted and ignored, as k6 does for HTTP-only and cloud options.
  static const std::set<std::string> kIgnored = {
      "noConnectionReuse", "noVUConnectionReuse", "discardResponseBodies", "batch", "batchPerHost",
      "maxRedirects", "rps", "noCookiesReset", "cloud", "ext", "paused", "hosts", "dns", "blacklistIPs",
      "blockHostnames", "localIPs", "httpDebug", "tlsVersion", "tlsCipherSuites", "tlsAuth", "summaryMode",
      "handleSummaryTimeout", "noUsageReport", "linger",
      "consoleOutput", "discardResponseMessage", "minIterationDuration"};
  std::vector<std::string> unknown;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& k = it.key();
    const json& v = *it;
    const std::string w = absl::StrCat(where, ".", k);
    if (k == "vus") {
      if (auto n = ReadInt(v, w, p)) {
        if (*n < 0) p.Add(absl::StrCat(w, ": must not be negative, got ", *n));
        o.vus = *n;
      }
    } else if (k == "duration") {
      if (auto d = ReadDuration(v, w, p)) o.duration = *d;
    } else if (k == "iterations") {
      if (auto n = ReadInt(v, w, p)) o.iterations = *n;
    } else if (k == "stages") {
      if (auto s = ReadStages(v, w, p)) o.stages = *s;
    } else if (k == "scenarios") {
      if (!v.is_object()) {
        p.Add(absl::StrCat(w, ": expected an object of scenarios, got ", v.dump()));
      } else {
        std::vector<Scenario> list;
        for (auto s = v.begin(); s != v.end(); ++s) ReadScenario(s.key(), *s, p, list);
        o.scenarios = list;
      }
    } else if (k == "thresholds") {
      if (!v.is_object()) {
        p.Add(absl::StrCat(w, ": expected an object, got ", v.dump()));
        continue;
      }
      std::map<std::string, std::vector<ThresholdSpec>> th;
      for (auto t = v.begin(); t != v.end(); ++t) {
        const std::string tw = absl::StrCat(w, ".", t.key());
        std::vector<ThresholdSpec> specs;
        json list = t->is_array() ? *t : json::array({*t});
        for (size_t i = 0; i < list.size(); ++i) {
          const json& e = list[i];
          const std::string ew = absl::StrCat(tw, "[", i, "]");
          ThresholdSpec spec;
          if (e.is_string()) {
            spec.expression = e.get<std::string>();
          } else if (e.is_object()) {
            for (auto f = e.begin(); f != e.end(); ++f) {
              if (f.key() == "threshold") {
                if (auto s = ReadString(*f, ew + ".threshold", p)) spec.expression = *s;
              } else if (f.key() == "abortOnFail") {
                if (auto b = ReadBool(*f, ew + ".abortOnFail", p)) spec.abort_on_fail = *b;
              } else if (f.key() == "delayAbortEval") {
                if (auto d = ReadDuration(*f, ew + ".delayAbortEval", p)) spec.delay_abort_eval = *d;
              } else {
                p.Add(absl::StrCat(ew, ": unknown field '", f.key(), "' (threshold, abortOnFail, delayAbortEval)"));
              }
            }
            if (spec.expression.empty()) p.Add(ew + ".threshold: required");
          } else {
            p.Add(absl::StrCat(ew, ": expected a string or {threshold, abortOnFail, delayAbortEval}, got ", e.dump()));
          }
          specs.push_back(spec);
        }
        th[t.key()] = specs;
      }
      o.thresholds = th;
    } else if (k == "summaryTrendStats") {
      if (!v.is_array()) {
        p.Add(absl::StrCat(w, ": expected an array of strings, got ", v.dump()));
      } else {
        std::vector<std::string> stats;
        for (const json& s : v) {
          if (s.is_string()) stats.push_back(s.get<std::string>());
          else p.Add(absl::StrCat(w, ": expected strings, got ", s.dump()));
        }
        absl::Status st = ValidateTrendStats(stats);
        if (!st.ok()) p.Add(absl::StrCat(where, ".", st.message()));
        o.summary_trend_stats = stats;
      }
    } else if (k == "summaryTimeUnit") {
      if (auto s = ReadString(v, w, p)) {
        if (*s != "" && *s != "s" && *s != "ms" && *s != "us") p.Add(absl::StrCat(w, ": must be s, ms or us, got '", *s, "'"));
        o.summary_time_unit = *s;
      }
    } else if (k == "setupTimeout") {
      if (auto d = ReadDuration(v, w, p)) o.setup_timeout = *d;
    } else if (k == "teardownTimeout") {
      if (auto d = ReadDuration(v, w, p)) o.teardown_timeout = *d;
    } else if (k == "noSetup") {
      if (auto b = ReadBool(v, w, p)) o.no_setup = *b;
    } else if (k == "noTeardown") {
      if (auto b = ReadBool(v, w, p)) o.no_teardown = *b;
    } else if (k == "throw") {
      if (auto b = ReadBool(v, w, p)) o.throw_errors = *b;
    } else if (k == "insecureSkipTLSVerify") {
      if (auto b = ReadBool(v, w, p)) o.insecure_skip_tls_verify = *b;
    } else if (k == "userAgent") {
      if (auto s = ReadString(v, w, p)) o.user_agent = *s;
    } else if (k == "tags") {
      if (auto t = ReadStringMap(v, w, p)) o.tags = *t;
    } else if (k == "systemTags") {
      if (v.is_array()) {
        std::vector<std::string> tags;
        for (const json& s : v) if (s.is_string()) tags.push_back(s.get<std::string>());
        o.system_tags = tags;
      } else {
        p.Add(absl::StrCat(w, ": expected an array of strings, got ", v.dump()));
      }
    } else if (k == "executionSegment" || k == "executionSegmentSequence") {
      // TODO(#4): execution segments. Refused rather than ignored: running
      // the whole test where a segment was asked for would be wrong load.
      p.Add(absl::StrCat(w, ": execution segments are not implemented yet in this version of barrage"));
    } else if (!kIgnored.count(k)) {
      unknown.push_back(k);
    }
  }
  if (!unknown.empty() && warnings != nullptr) {
    warnings->push_back(absl::StrCat("There were unknown fields in the options exported in the script: ",
                                     absl::StrJoin(unknown, ", ")));
  }
  if (!p.empty()) return p.ToStatus();
  return o;
}

Options MergeOptions(const Options& lower, const Options& higher) {
  Options out = lower;
  if (higher.duration || higher.iterations || higher.stages || higher.scenarios) {
    out.duration.reset();
    out.iterations.reset();
    out.stages.reset();
    out.scenarios.reset();
  }
#define BARRAGE_MERGE(field) if (higher.field) out.field = higher.field
  BARRAGE_MERGE(vus);
  BARRAGE_MERGE(duration);
  BARRAGE_MERGE(iterations);
  BARRAGE_MERGE(stages);
  BARRAGE_MERGE(scenarios);
  BARRAGE_MERGE(thresholds);
  BARRAGE_MERGE(summary_trend_stats);
  BARRAGE_MERGE(summary_time_unit);
  BARRAGE_MERGE(setup_timeout);
  BARRAGE_MERGE(teardown_timeout);
  BARRAGE_MERGE(no_setup);
  BARRAGE_MERGE(no_teardown);
  BARRAGE_MERGE(throw_errors);
  BARRAGE_MERGE(tags);
  BARRAGE_MERGE(system_tags);
  BARRAGE_MERGE(user_agent);
  BARRAGE_MERGE(min_iteration_duration);
  BARRAGE_MERGE(insecure_skip_tls_verify);
#undef BARRAGE_MERGE
  return out;
}

absl::StatusOr<std::vector<Scenario>> ResolveScenarios(const Options& o, std::vector<std::string>* warnings) {
  std::vector<Scenario> out;
  if (o.vus && *o.vus < 0) return absl::InvalidArgumentError("vus: must not be negative");
  if (o.iterations) {
    if (o.stages || o.scenarios) {
      return absl::InvalidArgumentError("iterations: can't be used together with stages or scenarios");
    }
    Scenario s;
    s.name = "default";
    s.executor = "shared-iterations";
    s.vus = o.vus.value_or(1);
    s.iterations = *o.iterations;
    if (o.duration) s.max_duration = *o.duration;
    out.push_back(s);
  } else if (o.duration) {
    if (o.stages || o.scenarios) {
      return absl::InvalidArgumentError("duration: can't be used together with stages or scenarios");
    }
    if (*o.duration <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("duration: must be greater than 0, got ", FormatGoDuration(*o.duration)));
    }
    Scenario s;
    s.name = "default";
    s.executor = "constant-vus";
    s.vus = o.vus.value_or(1);
    s.duration = *o.duration;
    out.push_back(s);
  } else if (o.stages && !o.stages->empty()) {
    if (o.scenarios) return absl::InvalidArgumentError("stages: can't be used together with scenarios");
    Scenario s;
    s.name = "default";
    s.executor = "ramping-vus";
    s.start_vus = o.vus.value_or(1);
    s.stages = *o.stages;
    out.push_back(s);
  } else if (o.scenarios && !o.scenarios->empty()) {
    if (o.vus && warnings) warnings->push_back("the vus option is ignored because scenarios are set");
    out = *o.scenarios;
  } else if (o.vus && *o.vus > 0) {
    Scenario s;
    s.name = "default";
    s.executor = "shared-iterations";
    s.vus = *o.vus;
    s.iterations = *o.vus;
    out.push_back(s);
  } else {
    Scenario s;
    s.name = "default";
    s.executor = "per-vu-iterations";
    out.push_back(s);
  }
  for (const Scenario& s : out) {
    absl::Status st = ValidateScenario(s);
    if (!st.ok()) return st;
  }
  return out;
}

}  // namespace barrage
